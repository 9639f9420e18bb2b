// The table page around the grid: the shell sized to the window (only the grid scrolls), the
// toolbar's chips and menus as popovers, the status bar's selection summary, and the column
// menu's sort and filter items, which fill in the view's own form and save it.
(function () {
  "use strict";

  var NUMERIC = {number: 1, currency: 1, percent: 1};

  // The shell fills the window below whatever sits above it (top bar, banners, flashes).
  function fitShell() {
    document.querySelectorAll(".grid-shell").forEach(function (shell) {
      var top = shell.getBoundingClientRect().top + window.scrollY;
      shell.style.setProperty("--grid-shell-top", Math.max(0, Math.round(top)) + "px");
    });
  }

  // --- popovers -----------------------------------------------------------------------------------

  function place(pop) {
    var panel = pop.querySelector(".grid-pop-panel");
    if (!panel) { return; }
    var rect = pop.querySelector("summary").getBoundingClientRect();
    var vw = document.documentElement.clientWidth;
    var width = Math.min(panel.offsetWidth, vw - 16);
    var left = panel.classList.contains("grid-pop-end") ? rect.right - width : rect.left;
    left = Math.max(8, Math.min(left, vw - width - 8));
    panel.style.setProperty("--pop-left", Math.round(left) + "px");
    panel.style.setProperty("--pop-top", Math.round(rect.bottom + 4) + "px");
  }

  function closeAll(except) {
    document.querySelectorAll("details.grid-pop[open]").forEach(function (d) { if (d !== except) { d.open = false; } });
  }

  document.addEventListener("toggle", function (e) {
    var pop = e.target;
    if (!pop.matches || !pop.matches("details.grid-pop") || !pop.open) { return; }
    closeAll(pop);
    place(pop);
    var first = pop.querySelector(".grid-pop-panel select, .grid-pop-panel input:not([type=hidden]), .grid-pop-panel a, .grid-pop-panel button");
    if (first && pop.dataset.chip !== "view") { first.focus({preventScroll: true}); }
  }, true);

  document.addEventListener("click", function (e) {
    if (!e.target.closest("details.grid-pop")) { closeAll(null); }
  });

  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") { return; }
    var open = document.querySelector("details.grid-pop[open]");
    if (open) { open.open = false; open.querySelector("summary").focus(); }
  });

  window.addEventListener("resize", function () {
    fitShell();
    document.querySelectorAll("details.grid-pop[open]").forEach(place);
  });

  // --- the status bar: selection size, sum and average of its numbers -----------------------------

  function cellNumber(cell) {
    var type = cell.dataset.type;
    if (!NUMERIC[type] && !cell.classList.contains("is-number")) { return null; }
    var raw = cell.dataset.raw;
    if (raw === undefined || raw === "") { return null; }
    var n = Number(raw);
    return isFinite(n) ? n : null;
  }

  // Sums and averages in the format of the column they come from (static/js/grid-format.js);
  // numbers from columns of different formats are shown plainly.
  function formatNumber(n, fmt) {
    if (fmt && window.MorketNumberFormat) { return window.MorketNumberFormat.format(n, fmt, 2); }
    return n.toLocaleString("en-US", {maximumFractionDigits: 2});
  }

  document.addEventListener("grid:selection", function (e) {
    var grid = e.target, box = document.querySelector('[data-grid="' + grid.id + '"] [data-grid-selection]');
    if (!box) { return; }
    var size = e.detail.rows * e.detail.columns;
    if (size <= 1) { box.textContent = ""; return; }
    var sum = 0, count = 0, shown = grid.querySelectorAll(".grid-cell.is-selected"), formats = {};
    shown.forEach(function (cell) {
      var n = cellNumber(cell);
      if (n !== null) { sum += n; count += 1; formats[cell.dataset.colId] = true; }
    });
    var cols = Object.keys(formats), fmt = null;
    if (cols.length && window.MorketNumberFormat) {
      var texts = cols.map(function (id) { return grid.querySelector('.grid-col-header[data-col-id="' + id + '"]').dataset.format || ""; });
      if (texts.every(function (t) { return t === texts[0]; })) { fmt = window.MorketNumberFormat.headerFormat(grid, cols[0]); }
    }
    var parts = [size.toLocaleString("en-US") + " cells selected"];
    // Only the rows in the window are in the page: a longer selection sums what is on screen.
    var scope = shown.length < size ? " (of the rows on screen)" : "";
    if (count) { parts.push("Sum " + formatNumber(sum, fmt) + scope, "Average " + formatNumber(sum / count, fmt) + scope); }
    box.textContent = parts.join(" · ");
  });

  // --- the column menu's sort and filter items ----------------------------------------------------

  document.addEventListener("click", function (e) {
    var item = e.target.closest("[data-view-sort], [data-view-filter]");
    if (!item) { return; }
    var tableId = item.dataset.tableId, column = item.dataset.columnId;
    var form = document.getElementById("view-form-" + tableId);
    if (!form) { return; }
    e.preventDefault();
    if (item.dataset.viewSort) {
      var cols = document.querySelectorAll('select[name="s_col"][form="' + form.id + '"]');
      var dirs = document.querySelectorAll('select[name="s_dir"][form="' + form.id + '"]');
      cols.forEach(function (select, i) { select.value = i === 0 ? column : ""; });
      if (dirs[0]) { dirs[0].value = item.dataset.viewSort; }
      form.requestSubmit();
      return;
    }
    // Filter: the first free filter line takes this column, and the filter popover opens on it.
    var lines = document.querySelectorAll("#view-editor-" + tableId + " [data-filter-line]");
    var line = Array.prototype.find.call(lines, function (l) { return !l.querySelector("[data-filter-column]").value; }) || lines[lines.length - 1];
    if (!line) { return; }
    var select = line.querySelector("[data-filter-column]");
    select.value = column;
    select.dispatchEvent(new Event("change", {bubbles: true}));
    var pop = line.closest("details.grid-pop"), menu = item.closest(".columns-popover");
    if (menu) { menu.hidden = true; menu.replaceChildren(); }
    pop.open = true;
    window.setTimeout(function () { line.querySelector("input[name=f_value]").focus(); }, 0);
  });

  function init() { fitShell(); }
  document.addEventListener("htmx:afterSettle", fitShell);
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
