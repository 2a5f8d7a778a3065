// Live analysis status: polls each [data-analysis-status] panel's JSON endpoint, updates its
// progress line, every badge with data-analysis-photo on the page, error reasons and Retry
// buttons, and stops once every photo is done or failed. No page reload; no framework.
(function () {
  "use strict";
  if (window.__analysisStatus) return; // the include may appear more than once on a page
  window.__analysisStatus = true;

  var INTERVAL_MS = 1500;
  var MAX_INTERVAL_MS = 15000;

  function progressText(s) {
    if (!s.total) return "No photos to analyse yet.";
    var parts = ["Analysis: " + s.finished + " of " + s.total + " photo" + (s.total === 1 ? "" : "s") + " finished"];
    if (s.counts.running) parts.push(s.counts.running + " running");
    if (s.counts.queued) parts.push(s.counts.queued + " queued");
    if (s.counts.failed) parts.push(s.counts.failed + " failed");
    return parts.join(" · ");
  }

  function update(panel, s) {
    var progress = panel.querySelector("[data-analysis-progress]");
    if (progress) progress.textContent = progressText(s);
    s.photos.forEach(function (p) {
      document.querySelectorAll('[data-analysis-photo="' + p.photo + '"]').forEach(function (badge) {
        badge.textContent = p.label;
        badge.dataset.status = p.status;
        badge.title = p.error || p.note || "";
      });
      var item = panel.querySelector('[data-analysis-item="' + p.photo + '"]');
      if (!item) return;
      var error = item.querySelector("[data-analysis-error]");
      if (error) error.textContent = p.status === "failed" ? (p.error || "") : (p.note || "");
      var retry = item.querySelector("[data-analysis-retry]");
      if (retry) {
        retry.hidden = p.status !== "failed";
        if (p.run) retry.action = panel.dataset.retryUrlTemplate.replace("00000000-0000-0000-0000-000000000000", p.run);
      }
    });
    panel.dataset.allFinished = s.all_finished ? "true" : "false";
  }

  function poll(panel, delay) {
    fetch(panel.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (s) {
        update(panel, s);
        if (!s.all_finished) setTimeout(function () { poll(panel, INTERVAL_MS); }, INTERVAL_MS);
      })
      .catch(function () {
        // Server or network hiccup: back off, keep trying.
        var next = Math.min(delay * 2, MAX_INTERVAL_MS);
        setTimeout(function () { poll(panel, next); }, next);
      });
  }

  function retry(panel, form) {
    fetch(form.action, {
      method: "POST", body: new FormData(form), credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      form.hidden = true;
      if (panel.dataset.allFinished === "true") poll(panel, INTERVAL_MS); // polling had stopped
      else panel.dataset.allFinished = "false";
    }).catch(function () { form.submit(); });
  }

  function start() {
    document.querySelectorAll("[data-analysis-status]").forEach(function (panel) {
      panel.addEventListener("submit", function (event) {
        var form = event.target.closest("[data-analysis-retry]");
        if (!form) return;
        event.preventDefault();
        retry(panel, form);
      });
      // Always one fetch on load (badges elsewhere on the page are filled from it), then poll while unfinished.
      poll(panel, INTERVAL_MS);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
