// Compare view: side by side, swipe and change map over the same registered frame, with one
// zoom/pan state shared by every pane.
(function () {
  "use strict";
  var root = document.getElementById("compare");
  if (!root) return;
  var panes = document.getElementById("panes");
  var stages = root.querySelectorAll(".stage");
  var worlds = root.querySelectorAll(".world");
  var before = root.querySelector(".img-before");
  var after = root.querySelector(".img-after");
  var swipe = document.getElementById("swipe");
  var zoomOut = document.getElementById("zoom-level");
  var H = JSON.parse(root.dataset.homography || "null");
  var state = { s: 1, x: 0, y: 0, fit: 1 };

  var W0 = 0, H0 = 0;

  function ready(img) { return img.complete && img.naturalWidth > 0; }

  // The world is the earlier photo's pixel grid; the later photo is mapped into it by the saved
  // homography (later → earlier), or scaled to the same size when none is stored.
  function layout() {
    if (!ready(before)) return;
    W0 = before.naturalWidth; H0 = before.naturalHeight;
    worlds.forEach(function (w) { w.style.width = W0 + "px"; w.style.height = H0 + "px"; });
    // Photos fill the earlier photo's frame; the change map is that frame plus a legend band below,
    // so it keeps its own height.
    root.querySelectorAll(".world img").forEach(function (img) {
      img.style.width = W0 + "px";
      if (!img.classList.contains("img-change")) img.style.height = H0 + "px";
    });
    if (after && ready(after)) {
      if (H) {
        after.style.width = after.naturalWidth + "px"; after.style.height = after.naturalHeight + "px";
        after.style.transform = "matrix3d(" + [H[0][0], H[1][0], 0, H[2][0], H[0][1], H[1][1], 0, H[2][1],
          0, 0, 1, 0, H[0][2], H[1][2], 0, H[2][2]].join(",") + ")";
      }
    }
    fit();
  }

  function fit() {
    var st = stages[stages.length - 1].getBoundingClientRect();
    if (!W0 || !st.width) return;
    state.fit = Math.min(st.width / W0, st.height / H0);
    state.s = 1; state.x = (st.width - W0 * state.fit) / 2; state.y = (st.height - H0 * state.fit) / 2;
    apply();
  }

  function apply() {
    var k = state.fit * state.s;
    worlds.forEach(function (w) { w.style.transform = "translate(" + state.x + "px," + state.y + "px) scale(" + k + ")"; });
    zoomOut.textContent = Math.round(state.s * 100) + "%";
  }

  function zoomAt(factor, cx, cy) {
    var s = Math.min(Math.max(state.s * factor, 1), 16);
    factor = s / state.s;
    state.x = cx - (cx - state.x) * factor; state.y = cy - (cy - state.y) * factor; state.s = s;
    apply();
  }

  stages.forEach(function (stage) {
    stage.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var r = stage.getBoundingClientRect();
      zoomAt(ev.deltaY < 0 ? 1.2 : 1 / 1.2, ev.clientX - r.left, ev.clientY - r.top);
    }, { passive: false });
    var drag = null, pointers = {}, pinch = null;
    stage.addEventListener("pointerdown", function (ev) {
      stage.setPointerCapture(ev.pointerId);
      pointers[ev.pointerId] = [ev.clientX, ev.clientY];
      drag = { x: ev.clientX, y: ev.clientY };
    });
    stage.addEventListener("pointermove", function (ev) {
      if (!pointers[ev.pointerId]) return;
      pointers[ev.pointerId] = [ev.clientX, ev.clientY];
      var ids = Object.keys(pointers);
      if (ids.length === 2) {
        var a = pointers[ids[0]], b = pointers[ids[1]], d = Math.hypot(a[0] - b[0], a[1] - b[1]);
        var r = stage.getBoundingClientRect();
        if (pinch) zoomAt(d / pinch, (a[0] + b[0]) / 2 - r.left, (a[1] + b[1]) / 2 - r.top);
        pinch = d; return;
      }
      if (!drag) return;
      state.x += ev.clientX - drag.x; state.y += ev.clientY - drag.y;
      drag = { x: ev.clientX, y: ev.clientY };
      apply();
    });
    function end(ev) { delete pointers[ev.pointerId]; pinch = null; drag = null; }
    stage.addEventListener("pointerup", end);
    stage.addEventListener("pointercancel", end);
    stage.addEventListener("dblclick", fit);
  });

  root.querySelectorAll("[data-zoom]").forEach(function (b) {
    b.addEventListener("click", function () {
      var r = stages[stages.length - 1].getBoundingClientRect();
      if (b.dataset.zoom === "reset") return fit();
      zoomAt(b.dataset.zoom === "in" ? 1.5 : 1 / 1.5, r.width / 2, r.height / 2);
    });
  });

  function setSwipe() {
    var v = +swipe.value;
    root.style.setProperty("--swipe", v + "%");
  }
  swipe.addEventListener("input", setSwipe);
  setSwipe();

  root.querySelectorAll("[data-mode]").forEach(function (b) {
    b.addEventListener("click", function () {
      panes.className = "panes mode-" + b.dataset.mode;
      root.querySelectorAll("[data-mode]").forEach(function (o) { o.setAttribute("aria-selected", o === b); });
      root.dataset.mode = b.dataset.mode;
      requestAnimationFrame(fit);
    });
  });

  [before, after].forEach(function (img) { if (img && !ready(img)) img.addEventListener("load", layout); });
  window.addEventListener("resize", fit);
  layout();
})();
