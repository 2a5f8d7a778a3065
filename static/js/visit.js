// Visit page: heatmap overlay on/off per photo ("h" toggles all), remembered for the session.
(function () {
  "use strict";
  // A photo request can fail transiently (the embedded SQLite demo refuses concurrent audit writes
  // with "database is locked"): retry a few times before showing a broken image.
  function retryImages(scope) {
    scope.querySelectorAll("img").forEach(function (img) {
      var tries = 0;
      img.addEventListener("error", function () {
        if (tries >= 4 || !img.getAttribute("src")) return;
        tries += 1;
        var url = img.getAttribute("src").replace(/[?&]retry=\d+$/, "");
        setTimeout(function () { img.src = url + (url.indexOf("?") < 0 ? "?" : "&") + "retry=" + tries; }, 300 * tries);
      });
      if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) img.dispatchEvent(new Event("error"));
    });
  }
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
  document.querySelectorAll(".overlay-wrap").forEach(retryImages);
  document.addEventListener("keydown", function (ev) {
    if (ev.key !== "h" || /INPUT|TEXTAREA|SELECT/.test(document.activeElement.tagName)) return;
    var on = !(toggles[0] && toggles[0].checked);
    toggles.forEach(function (box) { apply(box, on); });
    try { sessionStorage.setItem("tt-heatmap", on ? "1" : "0"); } catch (e) { /* private mode */ }
  });
})();
