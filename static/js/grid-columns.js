// Column operations on the grid header: a menu per column (▾ button, right-click, Enter or
// Shift+F10 on a focused header), the '+' header cell that adds a column, drag to reorder, drag
// the right edge to resize. The menu and forms are server-rendered partials posted with htmx; a change of the
// header layout answers with HX-Refresh, a job with its progress partial.
(function () {
  "use strict";

  var MIN_WIDTH = 40, MAX_WIDTH = 1200;

  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; }
    catch (e) { return ""; }
  }

  function post(url, fields) {
    var body = new URLSearchParams(fields);
    body.set("csrf_token", csrf());
    return fetch(url, {method: "POST", body: body, credentials: "same-origin",
                       headers: {"HX-Request": "true", "X-CSRFToken": csrf()}});
  }

  function Columns(grid) {
    this.grid = grid;
    this.base = grid.dataset.baseUrl + "/columns";
    this.viewId = grid.dataset.viewId || "";
    this.popover = document.createElement("div");
    this.popover.className = "columns-popover";
    this.popover.id = "table-" + grid.dataset.tableId + "-columns";
    this.popover.hidden = true;
    document.body.appendChild(this.popover);
    // A bar above the grid's layout shows running column jobs (hidden while there are none).
    this.bar = document.createElement("div");
    this.bar.className = "columns-bar";
    var layout = grid.closest(".grid-layout") || grid;
    layout.parentNode.insertBefore(this.bar, layout);
    this.opener = null;
    this.decorate();
    this.listen();
    this.showRunningJobs();
  }

  // Conversions and formula runs still going (started before this page load) show their progress.
  Columns.prototype.showRunningJobs = function () {
    var box = document.createElement("div");
    box.className = "columns-running";
    box.id = "table-" + this.grid.dataset.tableId + "-column-jobs";
    this.bar.appendChild(box);
    window.htmx.ajax("GET", this.base + "/jobs", {target: box, swap: "innerHTML"});
  };

  Columns.prototype.headers = function () {
    return Array.prototype.slice.call(this.grid.querySelectorAll(".grid-col-header"));
  };

  Columns.prototype.decorate = function () {
    var self = this;
    this.headers().forEach(function (h) {
      h.tabIndex = 0;
      h.draggable = true;
      h.setAttribute("aria-haspopup", "menu");
      var button = document.createElement("button");
      button.type = "button";
      button.className = "col-menu-btn";
      button.tabIndex = -1;
      button.setAttribute("aria-label", "Column actions");
      button.textContent = "▾";
      h.appendChild(button);
      var handle = document.createElement("span");
      handle.className = "col-resize";
      handle.setAttribute("aria-hidden", "true");
      h.appendChild(handle);
    });
    var add = this.grid.querySelector(".grid-col-add .col-add-btn");
    if (add) { add.addEventListener("click", function () { self.open(self.base + "/new", add); }); }
  };

  Columns.prototype.open = function (url, opener) {
    var self = this;
    this.opener = opener;
    var rect = opener.getBoundingClientRect();
    this.popover.hidden = false;
    // Kept inside the window, so the page never scrolls sideways to show it.
    var width = Math.min(this.popover.offsetWidth || 340, document.documentElement.clientWidth - 16);
    var left = Math.min(rect.left, document.documentElement.clientWidth - width - 8);
    this.popover.style.top = Math.round(rect.bottom + window.scrollY + 4) + "px";
    this.popover.style.left = Math.round(Math.max(8, left) + window.scrollX) + "px";
    return window.htmx.ajax("GET", url, {target: this.popover, swap: "innerHTML"}).then(function () {
      var first = self.popover.querySelector("input:not([type=hidden]), select, textarea, button");
      if (first) { first.focus(); }
    });
  };

  // "Insert left/right": the add-column form, sent with the new column's place (1-based).
  Columns.prototype.insertAt = function (position) {
    var self = this;
    this.open(this.base + "/new", this.opener).then(function () {
      var field = self.popover.querySelector("input[name=position]");
      if (field) { field.value = position; }
      var heading = self.popover.querySelector(".columns-heading");
      if (heading) { heading.textContent = "Insert a column"; }
    });
  };

  Columns.prototype.close = function () {
    if (this.popover.hidden) { return; }
    this.popover.hidden = true;
    this.popover.innerHTML = "";
    if (this.opener && this.opener.focus) { this.opener.focus(); }
  };

  Columns.prototype.menuFor = function (header) {
    var url = this.base + "/" + header.dataset.colId + "/menu" + (this.viewId ? "?view=" + this.viewId : "");
    this.open(url, header);
  };

  Columns.prototype.listen = function () {
    var self = this, grid = this.grid, dragged = null;
    grid.addEventListener("click", function (e) {
      var button = e.target.closest(".col-menu-btn");
      if (button) { e.stopPropagation(); self.menuFor(button.closest(".grid-col-header")); }
    });
    grid.addEventListener("contextmenu", function (e) {
      var header = e.target.closest(".grid-col-header");
      if (header) { e.preventDefault(); self.menuFor(header); return; }
      var cell = e.target.closest(".grid-cell[data-type=enrichment]");
      if (cell) { e.preventDefault(); self.enrichSelected(cell); }
    });
    grid.addEventListener("keydown", function (e) {
      var header = e.target.closest && e.target.closest(".grid-col-header");
      if (!header || e.target !== header) { return; }
      if (e.key === "Enter" || e.key === "ContextMenu" || (e.key === "F10" && e.shiftKey)) {
        e.preventDefault();
        e.stopPropagation();
        self.menuFor(header);
      }
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && !self.popover.hidden) { e.preventDefault(); self.close(); }
    });
    document.addEventListener("click", function (e) {
      if (self.popover.hidden || self.popover.contains(e.target)) { return; }
      if (e.target.closest(".col-menu-btn, .col-add-btn, .grid-col-header")) { return; }
      self.close();
    });
    this.popover.addEventListener("click", function (e) {
      if (e.target.closest(".columns-close")) { self.close(); return; }
      var insert = e.target.closest("[data-insert-position]");
      if (insert) { self.insertAt(insert.dataset.insertPosition); }
    });
    this.popover.addEventListener("change", function (e) {
      if (e.target.matches(".columns-type")) { self.popover.dataset.type = e.target.value; }
    });
    // Drag a header onto another to move it there.
    grid.addEventListener("dragstart", function (e) {
      var header = e.target.closest && e.target.closest(".grid-col-header");
      if (!header || e.target.closest(".col-resize")) { return; }
      dragged = header;
      header.classList.add("is-dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/plain", header.dataset.colId);
    });
    grid.addEventListener("dragover", function (e) {
      if (dragged && e.target.closest(".grid-col-header")) { e.preventDefault(); }
    });
    grid.addEventListener("drop", function (e) {
      var target = e.target.closest(".grid-col-header");
      if (!dragged || !target || target === dragged) { return; }
      e.preventDefault();
      post(self.base + "/" + dragged.dataset.colId + "/move", {to_column: target.dataset.colId})
        .then(function (r) { self.after(r); });
      dragged = null;
    });
    grid.addEventListener("dragend", function () {
      if (dragged) { dragged.classList.remove("is-dragging"); }
      dragged = null;
    });
    // Drag the right edge of a header to resize its column; the width is saved into the view.
    grid.addEventListener("mousedown", function (e) {
      var handle = e.target.closest(".col-resize");
      if (!handle) { return; }
      e.preventDefault();
      var header = handle.closest(".grid-col-header");
      var startX = e.clientX, startW = parseInt(header.dataset.width, 10) || header.offsetWidth;
      function move(ev) {
        var w = Math.max(MIN_WIDTH, Math.min(MAX_WIDTH, startW + ev.clientX - startX));
        header.dataset.width = String(w);
        self.applyWidths();
      }
      function up() {
        document.removeEventListener("mousemove", move);
        document.removeEventListener("mouseup", up);
        post(self.base + "/" + header.dataset.colId + "/width", {width: header.dataset.width, view_id: self.viewId});
      }
      document.addEventListener("mousemove", move);
      document.addEventListener("mouseup", up);
    });
  };

  // "Enrich selected rows": the rows of the selected cells (or the clicked one), estimated first.
  Columns.prototype.enrichSelected = function (cell) {
    var ids = {}, list = [];
    this.grid.querySelectorAll(".grid-cell.is-selected, .grid-cell.is-cursor").forEach(function (c) {
      var row = c.closest(".grid-row");
      if (row) { ids[row.dataset.rowId] = true; }
    });
    var own = cell.closest(".grid-row");
    if (own && !ids[own.dataset.rowId]) { ids = {}; ids[own.dataset.rowId] = true; }
    for (var id in ids) { if (Object.prototype.hasOwnProperty.call(ids, id)) { list.push(id); } }
    var url = this.grid.dataset.baseUrl + "/enrichment/" + cell.dataset.colId + "/estimate?scope=selected&row_ids=" + list.join(",");
    this.open(url, cell);
  };

  // The same layout as grid.js: one CSS grid column per header cell, frozen offsets.
  Columns.prototype.applyWidths = function () {
    var cells = this.grid.querySelector(".grid-header").children, cols = [], left = 0;
    for (var i = 0; i < cells.length; i++) {
      var w = parseInt(cells[i].dataset.width, 10) || (i === 0 ? 76 : 180);
      cols.push(w + "px");
      if (i > 0) { this.grid.style.setProperty("--f" + i, left + "px"); }
      left += w;
    }
    this.grid.style.setProperty("--grid-cols", cols.join(" "));
    this.grid.style.setProperty("--grid-width", left + "px");
  };

  Columns.prototype.after = function (response) {
    if (response.headers.get("HX-Refresh") === "true") { window.location.reload(); return; }
    var self = this;
    response.text().then(function (html) {
      self.popover.hidden = false;
      self.popover.innerHTML = html;
      if (window.htmx) { window.htmx.process(self.popover); }
    });
  };

  function init() {
    document.querySelectorAll(".grid[data-table-id]").forEach(function (grid) {
      if (grid.dataset.canEdit === "true" && !grid.columnsReady) {
        grid.columnsReady = true;
        new Columns(grid);
      }
    });
  }

  // A refused column change (400, 404, 409, 422) swaps its message into the menu's result area.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail.target, status = e.detail.xhr.status;
    if (status >= 400 && status < 500 && target && target.classList.contains("columns-result")) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); }
  else { init(); }
})();
