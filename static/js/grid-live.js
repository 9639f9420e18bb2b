// Rows that arrive from elsewhere (an inbound webhook source) show in the open grid without a reload:
// while the tab is visible, ask the table's pulse every few seconds and refresh the grid's window
// when it changes. Only tables with an inbound source carry [data-grid-live].
(function () {
  "use strict";

  var EVERY_MS = 3000;

  function watch(el) {
    var gridEl = document.getElementById(el.dataset.gridLive);
    var url = el.dataset.pulseUrl;
    var last = null, busy = false;
    function tick() {
      if (busy || document.hidden || !window.MorketGrid) { return; }
      busy = true;
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}}).then(function (resp) {
        return resp.ok ? resp.json() : null;
      }).then(function (got) {
        if (!got) { return; }
        if (last !== null && got.stamp !== last) {
          var grid = window.MorketGrid.get(gridEl);
          if (grid) { grid.refresh(); }
        }
        last = got.stamp;
      }).catch(function () { /* offline: the next tick tries again */ }).then(function () { busy = false; });
    }
    tick();
    window.setInterval(tick, EVERY_MS);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { tick(); } });
  }

  function init() { document.querySelectorAll("[data-grid-live]").forEach(watch); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
