// Trend charts for the patient timeline: inline SVG drawn from the saved results in #trend-data.
// No library: five small multiples per view, uncertainty bars, treatment spans and start markers.
(function () {
  "use strict";
  var holder = document.getElementById("trend-data");
  if (!holder) return;
  var data = JSON.parse(holder.textContent);
  var NS = "http://www.w3.org/2000/svg";
  var W = 260, H = 160, L = 34, R = 8, T = 10, B = 22;
  var keys = Object.keys(data.series);
  var chartsEl = document.getElementById("trend-charts");
  var tabsEl = document.getElementById("trend-views");
  var DAY = 86400000;

  function el(name, attrs, parent) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function t(iso) { return Date.parse(iso + "T00:00:00Z"); }
  function fmtDate(ms) {
    return new Date(ms).toLocaleDateString(undefined, { month: "short", year: "2-digit", timeZone: "UTC" });
  }

  // One time axis for every chart, so the charts line up and treatments read across them.
  var allDates = [];
  keys.forEach(function (k) {
    data.metrics.forEach(function (m) { data.series[k].points[m.key].forEach(function (p) { allDates.push(t(p.date)); }); });
  });
  if (!allDates.length) {
    chartsEl.innerHTML = '<p class="muted">No analysed photos yet: trends appear once results are in.</p>';
    return;
  }
  var x0 = Math.min.apply(null, allDates), x1 = Math.max.apply(null, allDates);
  if (x1 - x0 < 30 * DAY) { x0 -= 15 * DAY; x1 += 15 * DAY; }
  var pad = (x1 - x0) * 0.04; x0 -= pad; x1 += pad;
  function sx(ms) { return L + (ms - x0) / (x1 - x0) * (W - L - R); }

  function niceTicks(lo, hi) {
    var span = hi - lo || 1, step = Math.pow(10, Math.floor(Math.log10(span / 3)));
    [1, 2, 5, 10].some(function (m) { if (span / (step * m) <= 4) { step *= m; return true; } return false; });
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push(+v.toFixed(6));
    return out;
  }

  function drawTreatments(svg) {
    data.treatments.forEach(function (tr) {
      var a = Math.max(sx(t(tr.start)), L), b = Math.min(tr.stop ? sx(t(tr.stop)) : W - R, W - R);
      if (b <= L || a >= W - R) return;
      el("rect", { x: a, y: T, width: Math.max(b - a, 1), height: H - T - B, "class": "tr-span" }, svg);
      if (sx(t(tr.start)) >= L) {
        el("line", { x1: a, x2: a, y1: T, y2: H - B, "class": "tr-start" }, svg);
        el("title", {}, svg).textContent = tr.name;
      }
    });
  }

  function chart(metric, points) {
    var box = document.createElement("figure");
    box.className = "chart";
    var cap = document.createElement("figcaption");
    var last = points.filter(function (p) { return !p.x; }).slice(-1)[0];
    cap.innerHTML = "<span>" + metric.label + "</span><b>" + (last ? last.v.toFixed(metric.decimals) + " " + metric.unit : "—") + "</b>";
    box.appendChild(cap);
    var svg = el("svg", { viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": metric.label + " over time" });
    box.appendChild(svg);
    if (!points.length) {
      var none = el("text", { x: W / 2, y: H / 2, "class": "none", "text-anchor": "middle" }, svg);
      none.textContent = metric.key === "part_width_mm" ? "Measured on part-line photos only"
        : /density|caliber|vellus/.test(metric.key) ? "Needs a calibrated photo (card or scale)" : "No data";
      return box;
    }
    var lo = Infinity, hi = -Infinity;
    points.forEach(function (p) { var e = p.e || 0; lo = Math.min(lo, p.v - e); hi = Math.max(hi, p.v + e); });
    var span = hi - lo || Math.abs(hi) * 0.1 || 1; lo -= span * 0.12; hi += span * 0.12;
    if (lo < 0 && points.every(function (p) { return p.v >= 0; })) lo = 0;
    function sy(v) { return T + (hi - v) / (hi - lo) * (H - T - B); }
    niceTicks(lo, hi).forEach(function (v) {
      el("line", { x1: L, x2: W - R, y1: sy(v), y2: sy(v), "class": "grid" }, svg);
      el("text", { x: L - 6, y: sy(v) + 3.5, "class": "tick", "text-anchor": "end" }, svg).textContent = v.toFixed(Math.max(0, metric.decimals - 1));
    });
    drawTreatments(svg);
    [x0 + pad, x1 - pad].forEach(function (ms, i) {
      el("text", { x: sx(ms), y: H - 8, "class": "tick", "text-anchor": i ? "end" : "start" }, svg).textContent = fmtDate(ms);
    });
    var kept = points.filter(function (p) { return !p.x; });
    if (kept.length > 1) {
      el("polyline", { points: kept.map(function (p) { return sx(t(p.date)) + "," + sy(p.v); }).join(" "), "class": "line" }, svg);
    }
    points.forEach(function (p) {
      var cx = sx(t(p.date)), g = el("g", { "class": "pt" + (p.x ? " excluded" : "") + (p.b ? " base" : "") }, svg);
      if (p.e) {
        el("line", { x1: cx, x2: cx, y1: sy(p.v - p.e), y2: sy(p.v + p.e), "class": "err" }, g);
        el("line", { x1: cx - 3, x2: cx + 3, y1: sy(p.v - p.e), y2: sy(p.v - p.e), "class": "err" }, g);
        el("line", { x1: cx - 3, x2: cx + 3, y1: sy(p.v + p.e), y2: sy(p.v + p.e), "class": "err" }, g);
      }
      el("circle", { cx: cx, cy: sy(p.v), r: p.b ? 4.5 : 3.2 }, g);
      el("title", {}, g).textContent = p.date + ": " + p.v.toFixed(metric.decimals) + (p.e ? " ± " + p.e.toFixed(metric.decimals) : "") + " " + metric.unit + (p.b ? " (baseline)" : "") + (p.x ? " — excluded" : "");
    });
    return box;
  }

  function show(key) {
    chartsEl.innerHTML = "";
    data.metrics.forEach(function (m) { chartsEl.appendChild(chart(m, data.series[key].points[m.key])); });
    Array.prototype.forEach.call(tabsEl.children, function (b) { b.setAttribute("aria-selected", b.dataset.key === key); });
    try { localStorage.setItem("tt-trend-view", key); } catch (e) { /* private mode */ }
  }

  keys.forEach(function (k) {
    var b = document.createElement("button");
    b.type = "button"; b.role = "tab"; b.dataset.key = k; b.textContent = data.series[k].label;
    b.addEventListener("click", function () { show(k); });
    tabsEl.appendChild(b);
  });
  var saved = null;
  try { saved = localStorage.getItem("tt-trend-view"); } catch (e) { /* private mode */ }
  // Open on the view the clinician looked at last, else the first with calibrated density.
  var dense = keys.filter(function (k) { return data.series[k].points.density_per_cm2.length; })[0];
  show(keys.indexOf(saved) >= 0 ? saved : dense || keys[0]);

  // Treatment band: each treatment as a span over the same time axis as the charts.
  var band = document.getElementById("treatment-band");
  if (band && data.treatments.length) {
    data.treatments.forEach(function (tr) {
      var a = Math.max((t(tr.start) - x0) / (x1 - x0), 0), b = tr.stop ? Math.min((t(tr.stop) - x0) / (x1 - x0), 1) : 1;
      if (b <= 0 || a >= 1) return;
      var row = document.createElement("div"); row.className = "band-row";
      var bar = document.createElement("span"); bar.className = "band-bar" + (tr.stop ? "" : " ongoing");
      bar.style.left = (a * 100) + "%"; bar.style.width = Math.max((b - a) * 100, 1) + "%";
      bar.textContent = tr.name; bar.title = tr.name + ": " + tr.start + " – " + (tr.stop || "ongoing");
      row.appendChild(bar); band.appendChild(row);
    });
  }
})();
