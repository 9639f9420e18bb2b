// While enrichment runs fill a table, its strip of running runs polls the server (htmx); each time a
// polled strip is swapped, the grid re-fetches its current window so that cells show their new
// values and states. The first, empty placeholder carries no data-grid, so the page load does not.
(function () {
  "use strict";
  document.addEventListener("htmx:afterSwap", function (e) {
    var strip = e.detail.target;
    if (!strip || !strip.classList || !strip.classList.contains("enrichment-active") || !strip.dataset.grid) { return; }
    var grid = document.getElementById(strip.dataset.grid);
    var api = grid && window.MorketGrid && window.MorketGrid.get(grid);
    if (api) { api.refresh(); }
  });
})();
