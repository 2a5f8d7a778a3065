// Visit page: heatmap overlay on/off per photo ("h" toggles all), remembered for the session.
(function () {
  "use strict";
  var toggles = document.querySelectorAll("[data-heatmap-toggle]");
  function apply(box, on) {
    box.checked = on;
    box.closest(".photo-view").querySelector(".overlay-wrap").classList.toggle("on", on);
  }
  var stored = null;
  try { stored = sessionStorage.getItem("tt-heatmap"); } catch (e) { /* private mode */ }
  toggles.forEach(function (box) {
    if (stored !== null) apply(box, stored === "1");
    box.addEventListener("change", function () { apply(box, box.checked); });
  });
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "h" || /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
    var on = !(toggles[0] && toggles[0].checked);
    toggles.forEach(function (box) { apply(box, on); });
    try { sessionStorage.setItem("tt-heatmap", on ? "1" : "0"); } catch (e) { /* private mode */ }
  });
})();
