// Enrichment on the grid page.
// 1. While runs fill a table, its strip of running runs polls the server (htmx); each time a polled
//    strip is swapped, the grid re-fetches its current window so that cells show their new values.
//    The first, empty placeholder carries no data-grid, so the page load does not.
// 2. The enrichment drawer: a panel beside the grid (the table stays visible and scrollable) that
//    htmx fills with the catalogue, a card's setup, a column's run choices or a cell's attempts. It
//    opens from the toolbar's Enrich button, the "add enrichment column" link, a column menu's
//    "Edit enrichment" link, the run control this script adds to each enrichment column header, a
//    click on an enrichment cell, and ?enrich=<column id> after a save. Every opener is a link to
//    a whole page, which is what a browser without JavaScript follows.
(function () {
  "use strict";

  document.addEventListener("htmx:afterSwap", function (e) {
    var strip = e.detail.target;
    if (!strip || !strip.classList || !strip.classList.contains("enrichment-active") || !strip.dataset.grid) { return; }
    var grid = document.getElementById(strip.dataset.grid);
    var api = grid && window.MorketGrid && window.MorketGrid.get(grid);
    if (api) { api.refresh(); }
  });

  var drawer = null, body = null, opener = null;

  // A refused drawer form (422, 409, 403 …) answers with the panel and its message: show it where the
  // person acted instead of dropping it. Error pages (no panel in them) are left to the default.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr, target = e.detail.target;
    if (!body || !target || !(target === body || body.contains(target))) { return; }
    if (xhr.status >= 400 && xhr.status < 500 && /class="enrich-panel|id="enrich-http-live|enrich-scrape-preview/.test(xhr.responseText || "")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  // A panel fetched into the drawer (a card, the editor, the runs) starts at its top; a form posted
  // back (a step moved, a column inserted, a test sent) keeps the place the person was working at.
  document.addEventListener("htmx:afterSwap", function (e) {
    var cfg = e.detail.requestConfig;
    if (drawer && e.detail.target === body && cfg && cfg.verb === "get") { drawer.scrollTop = 0; }
  });

  function grid() { return document.querySelector(".grid[data-table-id]"); }

  function build() {
    if (drawer) { return; }
    drawer = document.createElement("aside");
    drawer.id = "enrich-drawer";
    drawer.className = "enrich-drawer";
    drawer.setAttribute("role", "dialog");
    drawer.setAttribute("aria-modal", "false");
    drawer.setAttribute("aria-label", "Enrichment");
    drawer.hidden = true;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "enrich-close";
    close.setAttribute("aria-label", "Close the enrichment panel");
    close.textContent = "×";
    close.addEventListener("click", closeDrawer);
    body = document.createElement("div");
    body.id = "enrich-drawer-body";
    body.className = "enrich-drawer-body";
    drawer.appendChild(close);
    drawer.appendChild(body);
    document.body.appendChild(drawer);
  }

  function openDrawer(url, from) {
    build();
    opener = from || document.activeElement;
    drawer.hidden = false;
    document.body.classList.add("has-enrich-drawer");
    window.htmx.ajax("GET", url, {target: body, swap: "innerHTML"}).then(function () {
      // The drawer's title takes the focus, unless the person is already working inside the drawer
      // (this promise can settle after a later panel was loaded and its controls were focused).
      if (body.contains(document.activeElement)) { return; }
      var title = body.querySelector("h2");
      if (title) { title.setAttribute("tabindex", "-1"); title.focus(); }
    });
  }

  function closeDrawer() {
    if (!drawer || drawer.hidden) { return; }
    drawer.hidden = true;
    body.innerHTML = "";
    document.body.classList.remove("has-enrich-drawer");
    if (opener && opener.focus && document.contains(opener)) { opener.focus(); }
  }

  function enrichmentBase() {
    var g = grid();
    return g ? g.dataset.baseUrl + "/enrichment" : null;
  }

  // A run control on every enrichment column header.
  function decorateHeaders() {
    var g = grid(), base = enrichmentBase();
    if (!g || !base || g.dataset.canEdit !== "true") { return; }
    g.querySelectorAll(".grid-col-header[data-col-type=enrichment]").forEach(function (h) {
      if (h.querySelector(".enrich-run-btn")) { return; }
      var a = document.createElement("a");
      a.className = "enrich-run-btn";
      a.href = base + "/" + h.dataset.colId + "/panel";
      a.draggable = false;
      a.setAttribute("aria-label", "Run " + (h.textContent || "").trim());
      a.title = "Run this column";
      a.textContent = "▶";
      h.insertBefore(a, h.querySelector(".col-menu-btn"));
    });
  }

  document.addEventListener("click", function (e) {
    if (e.defaultPrevented || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) { return; }
    var base = enrichmentBase();
    if (!base) { return; }
    var link = e.target.closest("#enrich-open, a.col-enrich-btn, a.enrich-run-btn, .enrichment-menu a[href]");
    if (link) {
      var href = link.getAttribute("href") || "";
      var url = null;
      if (link.classList.contains("enrich-run-btn")) { url = href; }
      else if (/\/enrichment\/\d+$/.test(href)) { url = href + "/panel/edit"; }
      else { url = base + "/panel"; }
      e.preventDefault();
      e.stopPropagation();
      var popover = link.closest(".columns-popover");
      if (popover) { popover.hidden = true; popover.innerHTML = ""; }
      openDrawer(url, link);
      return;
    }
    var cell = e.target.closest(".grid-cell[data-type=enrichment]");
    var row = cell && cell.closest(".grid-row");
    if (cell && row && row.dataset.rowId) {
      openDrawer(base + "/" + cell.dataset.colId + "/rows/" + row.dataset.rowId + "/attempts", cell);
    }
  }, true);

  document.addEventListener("keydown", function (e) {
    if (e.key === "Escape" && drawer && !drawer.hidden && drawer.contains(document.activeElement)) {
      e.preventDefault();
      closeDrawer();
    }
  });

  // A run started from the drawer: ask for the strip of running runs again, so that it polls and
  // the grid fills in as the run goes.
  document.body.addEventListener("enrichment-run-started", function () {
    var g = grid(), strip = g && document.getElementById("table-" + g.dataset.tableId + "-runs");
    if (strip && window.htmx) {
      var url = enrichmentBase() + "/active";
      window.htmx.ajax("GET", url, {target: strip, swap: "outerHTML"});
    }
  });

  function init() {
    decorateHeaders();
    var params = new URLSearchParams(window.location.search);
    var column = params.get("enrich");
    if (column && /^\d+$/.test(column) && enrichmentBase()) {
      params.delete("enrich");
      var rest = params.toString();
      window.history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
      openDrawer(enrichmentBase() + "/" + column + "/panel", null);
      // Bring the new columns (added at the end) into view beside the drawer.
      var headers = grid().querySelectorAll(".grid-col-header");
      if (headers.length) { headers[headers.length - 1].scrollIntoView({block: "nearest", inline: "nearest"}); }
    }
  }

  // Deferred scripts run before DOMContentLoaded, and htmx may come after this one.
  if (document.readyState === "complete") { init(); }
  else { document.addEventListener("DOMContentLoaded", init); }
})();
