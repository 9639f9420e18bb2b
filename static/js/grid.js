// The grid: a windowed, virtually scrolled list of rows. Only the rows near the viewport are in
// the DOM (never more than MAX_ROWS); scrolling fetches the window partial for the new position.
(function () {
  "use strict";

  var MAX_PX = 15000000;    // browsers cap element heights near 16.7M px; stay under it
  var OVERSCAN = 40;        // rows fetched above and below the visible ones
  var MARGIN = 10;          // refetch when fewer than this many loaded rows remain past the viewport
  var MAX_ROWS = 300;
  var DEBOUNCE_MS = 60;
  var ROWNUM_WIDTH = 76;    // seven digits: row 1,000,000 shows in full
  var SORT_POLL_MS = 1000;  // while a view's order builds
  var grids = new WeakMap();

  function Grid(el) {
    this.el = el;
    this.rowHeight = parseInt(el.dataset.rowHeight, 10) || 32;
    this.header = el.querySelector(".grid-header");
    this.spacer = el.querySelector(".grid-spacer");
    this.block = el.querySelector(".grid-rows");
    this.addRow = el.querySelector(".grid-addrow");
    this.total = el.dataset.total === "" ? null : parseInt(el.dataset.total, 10);
    this.query = "";
    this.loaded = null;       // {start, count} of the rows in the DOM
    this.pending = null;      // {start, count, controller} of the request in flight
    this.timer = null;
    this.frame = null;
    this.applyWidths();
    this.layout();
    var self = this;
    el.addEventListener("scroll", function () { self.onScroll(); }, {passive: true});
    window.addEventListener("resize", function () { self.onScroll(); });
    el.addEventListener("click", function (e) { self.onClick(e); });
    el.addEventListener("keydown", function (e) { self.onKey(e); });
    if (el.dataset.openRow) { this.openTarget(el.dataset.openRow, parseInt(el.dataset.openPos, 10)); } else { this.fetchWindow(0, true); }
  }

  // ?row=<id> (a search result): scroll to the row at any depth, mark it, and open its panel.
  Grid.prototype.openTarget = function (rowId, pos) {
    var el = this.el;
    if (!isNaN(pos) && this.total) {
      el.scrollTop = this.scrollTopFor(Math.max(0, pos - 2));
      this.fetchWindow(undefined, true);
    } else {
      this.fetchWindow(0, true);
    }
    var mark = function () {
      var row = el.querySelector('.grid-row[data-row-id="' + rowId + '"]');
      if (row) { row.classList.add("is-target"); }
    };
    el.addEventListener("grid:window-rendered", mark);
    this.openRow({dataset: {rowId: rowId}});
  };

  // Column widths come from data-width (the view's widths); rows are CSS grids sharing --grid-cols.
  // Frozen columns stick at left offsets --f1..--f10 (see grid.css).
  Grid.prototype.applyWidths = function () {
    var cells = this.header.children, cols = [], left = 0;
    for (var i = 0; i < cells.length; i++) {
      var w = parseInt(cells[i].dataset.width, 10) || (i === 0 ? ROWNUM_WIDTH : 180);
      cols.push(w + "px");
      if (i > 0) { this.el.style.setProperty("--f" + i, left + "px"); }
      left += w;
    }
    this.el.style.setProperty("--grid-cols", cols.join(" "));
    this.el.style.setProperty("--grid-width", left + "px");
  };

  Grid.prototype.headerHeight = function () { return this.header.offsetHeight; };

  // The add-row line sits at the end of the spacer: the last rows must fit above it.
  Grid.prototype.footerHeight = function () { return this.addRow ? this.rowHeight : 0; };

  Grid.prototype.visibleRows = function () {
    return Math.max(1, Math.floor((this.el.clientHeight - this.headerHeight() - this.footerHeight()) / this.rowHeight));
  };

  // The spacer gives the scrollbar its range: total rows x row height, capped at MAX_PX. It holds
  // the rows block and clips it (overflow-y: clip), so overscan never lengthens the range.
  Grid.prototype.layout = function () {
    var total = this.total || 0;
    var natural = total * this.rowHeight;
    this.scaled = natural > MAX_PX;
    this.spacer.style.height = Math.min(natural, MAX_PX) + this.footerHeight() + "px";
  };

  // Where row 0 starts in the scrolled content: the spacer follows the header (and anything other
  // scripts put above it) in the normal flow.
  Grid.prototype.origin = function () { return this.spacer.offsetTop; };

  // Position mapping (rows are numbered from 0; O = origin, H = header height, the header sticks):
  //  - unscaled: row i sits at O + i x rowHeight, one pixel per pixel; the first row under the
  //    stuck header is (scrollTop + H - O) / rowHeight;
  //  - scaled (rows x rowHeight > MAX_PX): the spacer is capped, so the scrollbar's range maps
  //    linearly onto the positions: first = scrollTop / (scrollHeight - clientHeight) x (total - visible).
  //    The top and the bottom of the scrollbar are the first and the last rows exactly. The rows
  //    block then follows the viewport: row `first` is drawn just under the header, at
  //    max(O, scrollTop + H), and the loaded rows around it at whole row heights from there.
  Grid.prototype.firstPosition = function () {
    var total = this.total || 0, visible = this.visibleRows();
    if (!this.scaled) {
      var raw = (this.el.scrollTop + this.headerHeight() - this.origin()) / this.rowHeight;
      return Math.max(0, Math.min(raw, Math.max(0, total - visible)));
    }
    var range = this.el.scrollHeight - this.el.clientHeight;
    var ratio = range > 0 ? Math.min(1, this.el.scrollTop / range) : 0;
    return ratio * Math.max(0, total - visible);
  };

  Grid.prototype.scrollTopFor = function (pos) {
    var total = this.total || 0, visible = this.visibleRows();
    if (!this.scaled) { return Math.max(0, this.origin() - this.headerHeight() + pos * this.rowHeight); }
    var range = this.el.scrollHeight - this.el.clientHeight;
    return total - visible > 0 ? Math.round(Math.min(pos, total - visible) / (total - visible) * range) : 0;
  };

  Grid.prototype.place = function () {
    if (!this.loaded) { return; }
    var top;
    if (!this.scaled) {
      top = this.origin() + this.loaded.start * this.rowHeight;
    } else {
      var anchor = Math.max(this.origin(), this.el.scrollTop + this.headerHeight());
      top = anchor + (this.loaded.start - this.firstPosition()) * this.rowHeight;
    }
    // The block lives in the spacer (which clips it to the scroll range), so offsets are from O.
    this.block.style.transform = "translateY(" + Math.round(top - this.origin()) + "px)";
  };

  Grid.prototype.wanted = function () {
    var first = Math.floor(this.firstPosition()), visible = this.visibleRows();
    var start = Math.max(0, first - OVERSCAN);
    var count = Math.min(MAX_ROWS, visible + 2 * OVERSCAN + (first - start - OVERSCAN) + 1);
    if (this.total !== null) { count = Math.max(1, Math.min(count, this.total - start)); }
    return {first: first, visible: visible, start: start, count: Math.max(1, count)};
  };

  Grid.prototype.covered = function (w, range) {
    if (!range) { return false; }
    var lo = Math.max(0, w.first - MARGIN);
    var hi = w.first + w.visible + MARGIN;
    if (this.total !== null) { hi = Math.min(hi, this.total); }
    return range.start <= lo && range.start + range.count >= hi;
  };

  Grid.prototype.onScroll = function () {
    var self = this;
    if (this.frame === null) {
      this.frame = window.requestAnimationFrame(function () { self.frame = null; self.place(); });
    }
    var w = this.wanted();
    if (this.covered(w, this.loaded) || this.covered(w, this.pending)) { return; }
    // Debounce: a scrollbar drag fetches once, for where it stops.
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(function () { self.fetchWindow(); }, DEBOUNCE_MS);
  };

  Grid.prototype.url = function (start, count) {
    var params = new URLSearchParams({start: String(start), limit: String(count)});
    if (this.el.dataset.viewId) { params.set("view", this.el.dataset.viewId); }
    if (this.query) { params.set("q", this.query); }
    return this.el.dataset.rowsUrl + "?" + params.toString();
  };

  Grid.prototype.fetchWindow = function (start, first) {
    var w = this.wanted();
    if (typeof start === "number") { w.start = start; w.count = Math.min(MAX_ROWS, w.visible + 2 * OVERSCAN); }
    if (this.pending) { this.pending.controller.abort(); }
    var controller = new AbortController();
    var req = {start: w.start, count: w.count, controller: controller};
    this.pending = req;
    this.el.classList.add("is-loading");
    var self = this;
    fetch(this.url(w.start, w.count), {
      headers: {"HX-Request": "true"}, credentials: "same-origin", signal: controller.signal
    }).then(function (resp) {
      if (!resp.ok) { throw new Error("HTTP " + resp.status); }
      return resp.text().then(function (html) {
        return {html: html, total: resp.headers.get("X-Grid-Total"), sorting: resp.headers.get("X-Grid-Sorting")};
      });
    }).then(function (got) {
      if (self.pending !== req) { return; }
      self.pending = null;
      self.render(got.html, req.start, got.total);
      self.sorting(got.sorting);
      if (first) {
        // The grid takes the keyboard when nothing else has it, so Ctrl+Z works after a reload.
        var active = document.activeElement;
        if (!active || active === document.body) {
          self.el.classList.add("is-quiet-focus");
          self.el.addEventListener("blur", function () { self.el.classList.remove("is-quiet-focus"); }, {once: true});
          self.el.focus({preventScroll: true});
        }
        self.el.dispatchEvent(new CustomEvent("grid:ready", {bubbles: true}));
      }
      self.onScroll();
    }).catch(function (err) {
      if (err.name === "AbortError") { return; }
      if (self.pending === req) { self.pending = null; }
      self.el.classList.remove("is-loading");
      self.status("Could not load rows. Scroll to retry.", true);
    });
  };

  // Swap in a window (the previous rows stay until this moment), then tell other scripts.
  Grid.prototype.render = function (html, start, total) {
    var hadFocus = this.el.contains(document.activeElement);  // the editor gives it back only then
    this.block.innerHTML = html;
    var count = this.block.children.length;
    this.loaded = {start: start, count: count};
    this.el.classList.remove("is-loading");
    if (total !== null && total !== undefined && total !== "") { this.setTotal(parseInt(total, 10)); }
    if (window.htmx) { window.htmx.process(this.block); }
    this.place();
    this.el.dispatchEvent(new CustomEvent("grid:window-rendered",
      {bubbles: true, detail: {start: start, count: count, hadFocus: hadFocus}}));
  };

  // A job builds the view's order ("<percent> <rows>"): the first rows come from a quick read, deeper
  // ones wait. Say so, and ask again every second until the order is in place.
  Grid.prototype.sorting = function (header) {
    window.clearTimeout(this.sortTimer);
    var parts = (header || "").split(" ");
    if (!header || parts.length !== 2) { this.el.removeAttribute("data-sorting"); return; }
    var percent = parseInt(parts[0], 10), rows = parseInt(parts[1], 10);
    this.el.setAttribute("data-sorting", String(percent));
    this.status("Sorting " + rows.toLocaleString("en-US") + " rows… " + percent + "%");
    var self = this;
    this.sortTimer = window.setTimeout(function () { if (!self.pending) { self.refresh(); } }, SORT_POLL_MS);
  };

  Grid.prototype.setTotal = function (total) {
    if (total === this.total) { this.status(); return; }
    this.total = total;
    this.el.dataset.total = String(total);
    this.el.setAttribute("aria-rowcount", String(total));
    this.layout();
    var empty = this.el.parentNode.querySelector(".grid-norows");
    if (empty) { empty.hidden = total > 0 || !!this.query; }
    this.noMatches(total === 0 && this.query);
    this.status();
  };

  Grid.prototype.status = function (message, isError) {
    var bar = document.querySelector('[data-grid="' + this.el.id + '"] [data-grid-status]');
    if (!bar) { return; }
    var span = document.createElement("span");
    if (message) {
      span.className = isError ? "grid-error" : "grid-sorting";
      span.textContent = message;
    } else {
      var n = this.total || 0;
      span.className = "grid-count";
      span.setAttribute("data-grid-count", "");
      var noun = this.query ? (n === 1 ? " match" : " matches") : (n === 1 ? " row" : " rows");
      span.textContent = n.toLocaleString("en-US") + noun;
    }
    bar.replaceChildren(span);
  };

  // A search that matches nothing says so where the rows would be, with a button that clears it
  // (the search box's "search" event asks htmx for the unsearched window again).
  Grid.prototype.noMatches = function (query) {
    var note = this.el.querySelector(".grid-nomatch");
    if (!query) { if (note) { note.remove(); } return; }
    if (!note) {
      note = document.createElement("div");
      note.className = "grid-empty grid-nomatch";
      note.setAttribute("data-empty-state", "");
      var title = document.createElement("strong");
      var text = document.createElement("span");
      var clear = document.createElement("button");
      clear.type = "button";
      clear.textContent = "Clear search";
      clear.setAttribute("data-empty-action", "");
      var gridId = this.el.id;
      clear.addEventListener("click", function () {
        var input = document.querySelector('[data-grid-search="' + gridId + '"]');
        if (!input) { return; }
        input.value = "";
        input.dispatchEvent(new Event("search"));
        input.focus();
      });
      note.append(title, " ", text, " ", clear);
      this.el.appendChild(note);
    }
    note.querySelector("strong").textContent = "No rows match this search.";
    note.querySelector("span").textContent = "Nothing in this view contains “" + query + "”.";
  };

  Grid.prototype.scrollToPos = function (pos) {
    this.el.scrollTop = this.scrollTopFor(Math.max(0, pos));
    this.onScroll();
  };

  Grid.prototype.refresh = function () {
    this.fetchWindow(this.loaded ? this.loaded.start : 0);
  };

  Grid.prototype.setQuery = function (query, total) {
    this.query = query;
    this.el.scrollTop = 0;
    this.loaded = null;
    this.total = null;
    this.setTotal(parseInt(total, 10));
    this.loaded = {start: 0, count: this.block.children.length};
    if (window.htmx) { window.htmx.process(this.block); }
    this.place();
    this.el.dispatchEvent(new CustomEvent("grid:window-rendered", {bubbles: true, detail: {start: 0, count: this.loaded.count}}));
  };

  Grid.prototype.rowUrl = function (rowId) { return this.el.dataset.baseUrl + "/rows/" + encodeURIComponent(rowId); };

  Grid.prototype.openRow = function (row) {
    var panel = document.getElementById(this.el.id.replace(/-grid$/, "-panel"));
    if (!panel || !window.htmx) { return; }
    panel.hidden = false;
    window.htmx.ajax("GET", this.rowUrl(row.dataset.rowId), {target: panel, swap: "innerHTML"});
  };

  Grid.prototype.onClick = function (e) {
    var num = e.target.closest(".grid-rownum");
    if (num && this.el.contains(num)) { this.openRow(num.parentElement); }
  };

  Grid.prototype.onKey = function (e) {
    if (e.key !== " " || e.defaultPrevented) { return; }
    var t = e.target;
    if (t.classList && (t.classList.contains("grid-rownum") || t.classList.contains("grid-row"))) {
      e.preventDefault();
      this.openRow(t.closest(".grid-row"));
    }
  };

  function get(el) { return grids.get(el) ? api(grids.get(el)) : null; }

  function api(g) {
    return {
      scrollToPos: function (pos) { g.scrollToPos(pos); },
      refresh: function () { g.refresh(); },
      busy: function () { return !!g.pending; },
      totalRows: function () { return g.total || 0; },
      rowHeight: g.rowHeight
    };
  }

  function init() {
    fitAll(document);
    document.querySelectorAll(".grid[data-rows-url]").forEach(function (el) {
      if (!grids.has(el)) { grids.set(el, new Grid(el)); }
    });
  }

  window.MorketGrid = {get: get};

  // Quick search: htmx swaps the first matches into the rows block; the grid adopts them.
  document.addEventListener("htmx:afterSwap", function (e) {
    var input = e.detail.requestConfig && e.detail.requestConfig.elt;
    if (!input || !input.dataset || !input.dataset.gridSearch) { return; }
    var el = document.getElementById(input.dataset.gridSearch);
    var g = el && grids.get(el);
    if (g) { g.setQuery(input.value.trim(), e.detail.xhr.getResponseHeader("X-Grid-Total")); }
  });
  document.addEventListener("htmx:beforeRequest", function (e) {
    var input = e.detail.elt;
    if (!input || !input.dataset || !input.dataset.gridSearch) { return; }
    var el = document.getElementById(input.dataset.gridSearch);
    var g = el && grids.get(el);
    if (g && g.pending) { g.pending.controller.abort(); g.pending = null; }
  });

  // A refused view change (422) swaps the editor back in with its message.
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail.target;
    if (e.detail.xhr.status === 422 && target && target.id && target.id.indexOf("view-editor-") === 0) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });

  // In a filter line, offer only the operators that apply to the chosen column's type.
  function fitOperators(line) {
    var column = line.querySelector("[data-filter-column]");
    var operator = line.querySelector("[data-filter-operator]");
    var picked = column.options[column.selectedIndex];
    var type = picked ? picked.getAttribute("data-type") : null;
    var firstFit = null;
    Array.prototype.forEach.call(operator.options, function (opt) {
      var fits = !type || (" " + opt.getAttribute("data-types") + " ").indexOf(" " + type + " ") >= 0;
      opt.hidden = !fits;
      opt.disabled = !fits;
      if (fits && firstFit === null) { firstFit = opt; }
    });
    if (operator.selectedOptions[0] && operator.selectedOptions[0].disabled && firstFit) { firstFit.selected = true; }
  }
  function fitAll(root) { root.querySelectorAll("[data-filter-line]").forEach(fitOperators); }
  document.addEventListener("change", function (e) {
    if (e.target.matches("[data-filter-column]")) { fitOperators(e.target.closest("[data-filter-line]")); }
  });
  document.addEventListener("htmx:afterSettle", function (e) { fitAll(e.detail.elt || document); });

  // The view picker opens the chosen view; the row panel closes on its Close button or Escape.
  document.addEventListener("change", function (e) {
    if (e.target.matches("select[data-autosubmit]")) { e.target.form.submit(); }
  });
  document.addEventListener("click", function (e) {
    var close = e.target.closest("[data-close-panel]");
    if (close) { var panel = close.closest(".grid-panel"); panel.hidden = true; panel.replaceChildren(); }
  });
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") { return; }
    document.querySelectorAll(".grid-panel:not([hidden])").forEach(function (p) { p.hidden = true; p.replaceChildren(); });
  });

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
