// Grid editing: a cell cursor and range selection, type-aware editors, clipboard (TSV), fill down,
// clear, add and delete rows, undo and redo. Keys follow Google Sheets. Saves show saving -> saved
// or failed on the cell; failed saves wait in a queue and are retried when the connection returns.
// The cursor is kept by row id + column id, so it survives windows being replaced while scrolling.
(function () {
  "use strict";

  var RETRY_MS = 10000;
  var SAVED_MS = 1500;
  var COALESCE_MS = 5000;  // cell saves this close together count up in one toast: "Saved 3 cells"
  var TEXTAREA_TYPES = {long_text: 1, json: 1, enrichment: 1};
  var READONLY_TYPES = {formula: 1, lookup: 1};
  var states = new WeakMap();

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (e) { return ""; }
  }

  function post(url, data) {
    var body = new URLSearchParams();
    Object.keys(data).forEach(function (k) { if (data[k] !== null && data[k] !== undefined) { body.set(k, String(data[k])); } });
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin",
      headers: {"X-CSRFToken": csrfToken(), "HX-Request": "true", "Accept": "application/json, text/html"}
    });
  }

  function readJson(resp) {
    return resp.json().catch(function () { return {error: {message: "The server answered " + resp.status + "."}}; });
  }

  function Editor(el) {
    this.el = el;
    this.canEdit = el.dataset.canEdit === "true";
    this.cursor = null;     // {rowId, colId, pos}
    this.anchor = null;     // the other corner of the selection, same shape
    this.editing = null;    // {rowId, colId, input, original, type}
    this.dragging = false;
    this.queue = [];        // failed saves: {rowId, colId, value}
    this.saving = [];       // saves in flight; range actions and undo wait for them
    this.refused = {};      // "rowId:colId" -> why the server refused the cell's last edit
    this.toolbar = document.querySelector('[data-edit-toolbar="' + el.id + '"]');
    this.banner = this.toolbar ? this.toolbar.querySelector("[data-offline]") : null;
    var self = this;
    el.addEventListener("grid:window-rendered", function (e) { self.restore(!!(e.detail && e.detail.hadFocus)); });
    el.addEventListener("mousedown", function (e) { self.onMouseDown(e); });
    el.addEventListener("mouseover", function (e) { self.onMouseOver(e); });
    document.addEventListener("mouseup", function () { self.dragging = false; });
    el.addEventListener("dblclick", function (e) { if (e.target.closest(".grid-cell")) { self.startEdit(); } });
    el.addEventListener("keydown", function (e) { self.onKey(e); });
    // Copy and paste events target the body when the focused cell is not editable: listen on the
    // document and act when the focus is in this grid.
    document.addEventListener("copy", function (e) { if (el.contains(document.activeElement)) { self.onCopy(e); } });
    document.addEventListener("paste", function (e) { if (el.contains(document.activeElement)) { self.onPaste(e); } });
    window.addEventListener("online", function () { self.setOffline(false); self.flush(); });
    window.addEventListener("offline", function () { self.setOffline(true); });
    window.setInterval(function () { if (self.queue.length) { self.flush(); } }, RETRY_MS);
    if (this.toolbar) {
      this.toolbar.addEventListener("click", function (e) {
        var button = e.target.closest("[data-edit-action]");
        if (!button) { return; }
        e.preventDefault();
        var menu = button.closest("details[open]");
        if (menu) { menu.open = false; }
        self.action(button.dataset.editAction, button.hasAttribute("data-at-end"), button);
      });
    }
    el.addEventListener("contextmenu", function (e) { self.onContextMenu(e); });
    document.addEventListener("mousedown", function (e) {
      if (self.rowMenu && !self.rowMenu.contains(e.target)) { self.closeRowMenu(); }
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && self.rowMenu) { self.closeRowMenu(); }
    });
    this.setOffline(navigator.onLine === false);
  }

  // --- geometry -----------------------------------------------------------------------------------

  Editor.prototype.columns = function () {
    return Array.prototype.map.call(this.el.querySelectorAll(".grid-header .grid-col-header"), function (h) { return h.dataset.colId; });
  };
  Editor.prototype.rows = function () { return Array.prototype.slice.call(this.el.querySelectorAll(".grid-rows .grid-row")); };
  Editor.prototype.rowById = function (id) { return this.el.querySelector('.grid-rows .grid-row[data-row-id="' + id + '"]'); };
  Editor.prototype.rowAt = function (pos) { return this.el.querySelector('.grid-rows .grid-row[data-pos="' + pos + '"]'); };
  Editor.prototype.cell = function (rowId, colId) {
    var row = this.rowById(rowId);
    return row ? row.querySelector('.grid-cell[data-col-id="' + colId + '"]') : null;
  };
  Editor.prototype.point = function (cell) {
    var row = cell.closest(".grid-row");
    return {rowId: row.dataset.rowId, colId: cell.dataset.colId, pos: parseInt(row.dataset.pos, 10)};
  };
  Editor.prototype.searching = function () {
    var input = document.querySelector('[data-grid-search="' + this.el.id + '"]');
    return !!(input && input.value.trim());
  };

  // The selection as positions and column ids; rowIds when every selected row is in the DOM.
  Editor.prototype.selection = function () {
    if (!this.cursor) { return null; }
    var a = this.anchor || this.cursor, c = this.cursor, cols = this.columns();
    var i = cols.indexOf(a.colId), j = cols.indexOf(c.colId);
    if (i < 0 || j < 0) { return null; }
    var top = a.pos <= c.pos ? a : c;
    var sel = {start: Math.min(a.pos, c.pos), end: Math.max(a.pos, c.pos), topRowId: top.rowId,
               colIds: cols.slice(Math.min(i, j), Math.max(i, j) + 1), rowIds: []};
    for (var p = sel.start; p <= sel.end; p++) {
      var row = this.rowAt(p);
      if (!row) { sel.rowIds = null; break; }
      sel.rowIds.push(row.dataset.rowId);
    }
    return sel;
  };

  // --- cursor and selection -----------------------------------------------------------------------

  Editor.prototype.paint = function () {
    this.el.querySelectorAll(".grid-cell.is-cursor, .grid-cell.is-selected").forEach(function (c) {
      c.classList.remove("is-cursor", "is-selected");
    });
    var sel = this.selection();
    if (!sel) {
      this.el.dispatchEvent(new CustomEvent("grid:selection", {bubbles: true, detail: {rows: 0, columns: 0}}));
      return;
    }
    var self = this;
    this.rows().forEach(function (row) {
      var pos = parseInt(row.dataset.pos, 10);
      if (pos < sel.start || pos > sel.end) { return; }
      sel.colIds.forEach(function (colId) {
        var cell = row.querySelector('.grid-cell[data-col-id="' + colId + '"]');
        if (cell) { cell.classList.add("is-selected"); }
      });
    });
    var cur = this.cell(this.cursor.rowId, this.cursor.colId);
    if (cur) { cur.classList.add("is-cursor"); }
    self.el.classList.toggle("has-range", sel.start !== sel.end || sel.colIds.length > 1);
    this.el.dispatchEvent(new CustomEvent("grid:selection", {bubbles: true, detail: {rows: sel.end - sel.start + 1, columns: sel.colIds.length}}));
  };

  Editor.prototype.moveTo = function (point, extend) {
    if (!extend) { this.anchor = null; } else if (!this.anchor) { this.anchor = this.cursor; }
    this.cursor = point;
    this.paint();
    var cell = this.cell(point.rowId, point.colId);
    if (cell) { cell.focus({preventScroll: false}); }
  };

  Editor.prototype.move = function (dRow, dCol, extend) {
    if (!this.cursor) { this.home(); return; }
    var cols = this.columns();
    var ci = Math.max(0, Math.min(cols.length - 1, cols.indexOf(this.cursor.colId) + dCol));
    var pos = this.cursor.pos + dRow;
    var grid = window.MorketGrid && window.MorketGrid.get(this.el);
    var total = grid ? grid.totalRows() : this.rows().length;
    pos = Math.max(0, Math.min(total - 1, pos));
    var row = this.rowAt(pos);
    if (row) {
      this.moveTo({rowId: row.dataset.rowId, colId: cols[ci], pos: pos}, extend);
      this.ensureVisible(pos);
    } else if (grid) {
      this.pendingMove = {pos: pos, colId: cols[ci], extend: extend};
      grid.scrollToPos(Math.max(0, pos - 5));
    }
  };

  Editor.prototype.ensureVisible = function (pos) {
    var row = this.rowAt(pos);
    if (!row) { return; }
    var box = this.el.getBoundingClientRect(), r = row.getBoundingClientRect();
    var header = this.el.querySelector(".grid-header");
    var top = box.top + (header ? header.offsetHeight : 0);
    if (r.top < top) { this.el.scrollTop -= top - r.top; } else if (r.bottom > box.bottom) { this.el.scrollTop += r.bottom - box.bottom; }
  };

  Editor.prototype.home = function () {
    var row = this.rows()[0], cols = this.columns();
    if (row && cols.length) { this.moveTo({rowId: row.dataset.rowId, colId: cols[0], pos: parseInt(row.dataset.pos, 10)}, false); }
  };

  // A new window replaced the rows: find the cursor's row again by id, re-attach an open editor.
  Editor.prototype.restore = function (hadFocus) {
    // A refused edit stays marked (and says why) until the cell is edited again, even when the
    // window is fetched again meanwhile (a live change by someone else, or this grid's own earlier save).
    var marks = this.refused;
    for (var key in marks) {
      var ids = key.split(":"), marked = this.cell(ids[0], ids[1]);
      if (marked) { marked.classList.add("is-error"); marked.title = marks[key]; }
    }
    if (this.pendingMove) {
      var want = this.pendingMove, row = this.rowAt(want.pos);
      if (row) {
        this.pendingMove = null;
        this.moveTo({rowId: row.dataset.rowId, colId: want.colId, pos: want.pos}, want.extend);
        this.ensureVisible(want.pos);
        return;
      }
    }
    var self = this;
    [this.cursor, this.anchor].forEach(function (p) {
      if (!p) { return; }
      var r = self.rowById(p.rowId);
      if (r) { p.pos = parseInt(r.dataset.pos, 10); }
    });
    this.paint();
    // The focused cell was replaced with the window: focus its successor unless the user went elsewhere
    // (a window fetched again while the focus is in a drawer or a form leaves it there).
    var active = document.activeElement;
    if (this.cursor && !this.editing && hadFocus && (!active || active === document.body)) {
      var successor = this.cell(this.cursor.rowId, this.cursor.colId);
      if (successor) { successor.focus({preventScroll: true}); }
    }
    if (this.editing) {
      var cell = this.cell(this.editing.rowId, this.editing.colId);
      if (cell) { cell.classList.add("is-editing"); cell.appendChild(this.editing.input); this.editing.input.focus(); }
    }
    this.queue.forEach(function (q) {
      var c = self.cell(q.rowId, q.colId);
      if (c) { self.showPending(c, q.value); }
    });
  };

  // --- mouse --------------------------------------------------------------------------------------

  Editor.prototype.onMouseDown = function (e) {
    var cell = e.target.closest(".grid-rows .grid-cell");
    if (!cell || e.button !== 0 || (this.editing && this.editing.input.contains(e.target))) { return; }
    var point = this.point(cell);
    var again = this.cursor && !this.anchor && this.cursor.rowId === point.rowId && this.cursor.colId === point.colId;
    if (this.editing) { this.commit(0, 0); }
    e.preventDefault();
    this.moveTo(point, e.shiftKey);
    this.dragging = !e.shiftKey;
    if (again) {
      if (cell.dataset.type === "checkbox") { this.toggle(); } else { this.startEdit(); }
    }
  };

  Editor.prototype.onMouseOver = function (e) {
    if (!this.dragging) { return; }
    var cell = e.target.closest(".grid-rows .grid-cell");
    if (!cell) { return; }
    var point = this.point(cell);
    if (!this.anchor) { this.anchor = this.cursor; }
    this.cursor = point;
    this.paint();
  };

  // --- keyboard -----------------------------------------------------------------------------------

  Editor.prototype.onKey = function (e) {
    var mod = e.ctrlKey || e.metaKey, key = e.key;
    if (this.editing) { this.onEditKey(e); return; }
    if (!e.target.closest(".grid-cell") && e.target !== this.el) { return; }
    if (mod && (key === "z" || key === "Z")) { e.preventDefault(); this.action(e.shiftKey ? "redo" : "undo"); return; }
    if (mod && (key === "y" || key === "Y")) { e.preventDefault(); this.action("redo"); return; }
    if (mod && (key === "d" || key === "D")) { e.preventDefault(); this.action("fill"); return; }
    if (mod && (key === "c" || key === "C") && navigator.clipboard && window.isSecureContext) {
      var tsv = this.tsv();
      if (tsv) {
        var self = this;
        navigator.clipboard.writeText(tsv).then(function () {
          self.say("Copied " + self.copied + (self.copied === 1 ? " cell." : " cells."));
        }).catch(function () { return null; });
      }
      return;
    }
    if (mod) { return; }
    var moves = {ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1]};
    if (moves[key]) { e.preventDefault(); this.move(moves[key][0], moves[key][1], e.shiftKey); return; }
    if (!this.cursor) { if (key === "Enter" || key === "Tab") { e.preventDefault(); this.home(); } return; }
    if (key === "Tab") { e.preventDefault(); this.move(0, e.shiftKey ? -1 : 1, false); return; }
    if (key === "Enter") { e.preventDefault(); this.cursorType() === "checkbox" ? this.toggle() : this.startEdit(); return; }
    if (key === " " && this.cursorType() === "checkbox") { e.preventDefault(); this.toggle(); return; }
    if (key === "Delete" || key === "Backspace") { e.preventDefault(); this.action("clear"); return; }
    if (key === "Escape") { this.anchor = null; this.paint(); return; }
    if (key.length === 1 && !e.altKey) { e.preventDefault(); this.startEdit(key); }
  };

  Editor.prototype.onEditKey = function (e) {
    var ed = this.editing, key = e.key;
    if (key === "Escape") { e.preventDefault(); this.cancel(); return; }
    if (key === "Tab") { e.preventDefault(); this.commit(0, e.shiftKey ? -1 : 1); return; }
    if (key === "Enter") {
      if (ed.input.tagName === "TEXTAREA" && (e.shiftKey || e.altKey)) { return; }
      e.preventDefault();
      this.commit(e.shiftKey ? -1 : 1, 0);
      return;
    }
    e.stopPropagation();
  };

  Editor.prototype.cursorType = function () {
    var cell = this.cursor && this.cell(this.cursor.rowId, this.cursor.colId);
    return cell ? cell.dataset.type : null;
  };

  // --- editors ------------------------------------------------------------------------------------

  function localDateTime(raw) {
    if (!raw) { return ""; }
    var d = new Date(raw);
    if (isNaN(d.getTime())) { return ""; }
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  Editor.prototype.options = function (colId) {
    var list = document.getElementById("grid-options-" + this.el.dataset.tableId + "-" + colId);
    return list ? Array.prototype.map.call(list.options, function (o) { return o.value; }) : [];
  };

  Editor.prototype.buildInput = function (type, raw, colId) {
    var input;
    if (TEXTAREA_TYPES[type]) {
      input = document.createElement("textarea");
      input.rows = 4;
      input.value = raw;
    } else if (type === "date") {
      input = document.createElement("input");
      input.type = "date";
      input.value = raw;
    } else if (type === "datetime") {
      input = document.createElement("input");
      input.type = "datetime-local";
      input.value = localDateTime(raw);
    } else if (type === "single_select" || type === "multi_select") {
      input = document.createElement("select");
      var chosen = raw.split(",").map(function (s) { return s.trim(); });
      if (type === "multi_select") { input.multiple = true; input.size = Math.min(6, Math.max(2, this.options(colId).length)); } else {
        var none = document.createElement("option");
        none.value = ""; none.textContent = "—";
        input.appendChild(none);
      }
      this.options(colId).forEach(function (name) {
        var opt = document.createElement("option");
        opt.value = name; opt.textContent = name; opt.selected = chosen.indexOf(name) >= 0;
        input.appendChild(opt);
      });
    } else {
      input = document.createElement("input");
      input.type = "text";
      if (type === "number" || type === "currency" || type === "percent") { input.inputMode = "decimal"; }
      if (type === "email") { input.inputMode = "email"; }
      if (type === "url") { input.inputMode = "url"; }
      if (type === "phone") { input.inputMode = "tel"; }
      input.value = raw;
    }
    input.className = "grid-editor t-" + type;
    input.setAttribute("aria-label", "Edit cell");
    return input;
  };

  Editor.prototype.valueOf = function (ed) {
    var input = ed.input;
    if (ed.type === "multi_select") {
      return Array.prototype.filter.call(input.options, function (o) { return o.selected; }).map(function (o) { return o.value; }).join(", ");
    }
    if (ed.type === "datetime") {
      if (!input.value) { return ""; }
      var d = new Date(input.value);
      return isNaN(d.getTime()) ? input.value : d.toISOString();
    }
    return input.value;
  };

  Editor.prototype.startEdit = function (typed) {
    if (!this.canEdit || !this.cursor) { return; }
    var cell = this.cell(this.cursor.rowId, this.cursor.colId);
    if (!cell) { return; }
    var type = cell.dataset.type;
    if (READONLY_TYPES[type]) { this.hint("This column is computed; its cells cannot be edited."); return; }
    if (type === "checkbox") { this.toggle(); return; }
    this.anchor = null;
    this.paint();
    var raw = cell.dataset.raw || "";
    var textual = !(type === "date" || type === "datetime" || type === "single_select" || type === "multi_select");
    var input = this.buildInput(type, typed !== undefined && textual ? typed : raw, cell.dataset.colId);
    var original = textual ? raw : this.valueOf({type: type, input: input});
    this.editing = {rowId: this.cursor.rowId, colId: this.cursor.colId, input: input, type: type, original: original};
    cell.classList.add("is-editing");
    cell.appendChild(input);
    input.focus();
    if (input.setSelectionRange && typed === undefined && textual) { input.setSelectionRange(input.value.length, input.value.length); }
    var self = this;
    // Focus leaving the editor (a click outside the grid) commits it; a window swap that detached
    // it does not (restore() puts it back).
    input.addEventListener("blur", function () {
      window.setTimeout(function () {
        if (self.editing && self.editing.input === input && input.isConnected && document.activeElement !== input) {
          self.commit(0, 0, true);
        }
      }, 0);
    });
  };

  Editor.prototype.close = function () {
    var ed = this.editing;
    this.editing = null;
    if (!ed) { return null; }
    var cell = this.cell(ed.rowId, ed.colId);
    if (cell) { cell.classList.remove("is-editing"); }
    if (ed.input.parentNode) { ed.input.parentNode.removeChild(ed.input); }
    return ed;
  };

  Editor.prototype.cancel = function () {
    var ed = this.close();
    if (ed) { var cell = this.cell(ed.rowId, ed.colId); if (cell) { cell.focus(); } }
  };

  Editor.prototype.commit = function (dRow, dCol, stay) {
    var ed = this.editing;
    if (!ed) { return; }
    var value = this.valueOf(ed);
    this.close();
    if (value !== ed.original) { this.save(ed.rowId, ed.colId, value); }
    if (stay) { return; }
    if (dRow || dCol) { this.move(dRow, dCol, false); } else {
      var cell = this.cell(ed.rowId, ed.colId);
      if (cell) { cell.focus(); }
    }
  };

  Editor.prototype.toggle = function () {
    if (!this.canEdit || !this.cursor) { return; }
    var cell = this.cell(this.cursor.rowId, this.cursor.colId);
    if (!cell || cell.dataset.type !== "checkbox") { return; }
    this.save(this.cursor.rowId, this.cursor.colId, cell.dataset.raw === "true" ? "false" : "true");
  };

  // --- saving one cell ----------------------------------------------------------------------------

  Editor.prototype.showPending = function (cell, value) {
    cell.classList.remove("is-saved", "is-error");
    cell.classList.add("is-failed");
    cell.title = "Not saved yet: waiting for the connection. It will be retried.";
    cell.textContent = value;
  };

  Editor.prototype.save = function (rowId, colId, value) {
    var cell = this.cell(rowId, colId), self = this;
    delete this.refused[rowId + ":" + colId];
    if (cell) { cell.classList.remove("is-saved", "is-error", "is-failed"); cell.classList.add("is-saving"); cell.removeAttribute("title"); }
    var done = post(this.el.dataset.saveUrl, {row_id: rowId, column_id: colId, value: value}).then(function (resp) {
      if (resp.ok) {
        return resp.text().then(function (html) {
          self.dequeue(rowId, colId);
          self.say("Saved.");
          self.toastSaved();
          var current = self.cell(rowId, colId);
          if (!current) { return; }
          var tpl = document.createElement("template");
          tpl.innerHTML = html.trim();
          var fresh = tpl.content.firstElementChild;
          if (!fresh) { return; }
          current.replaceWith(fresh);
          self.paint();
          if (self.cursor && self.cursor.rowId === rowId && self.cursor.colId === colId && self.el.contains(document.activeElement) && !self.editing) { fresh.focus(); }
          window.setTimeout(function () { fresh.classList.remove("is-saved"); }, SAVED_MS);
          self.refreshDependents(colId);
        });
      }
      if (resp.status >= 500 || resp.status === 429) { throw new Error("retry"); }
      return readJson(resp).then(function (body) {
        self.dequeue(rowId, colId);
        var message = (body.error && body.error.message) || "This value could not be saved.";
        self.refused[rowId + ":" + colId] = message;
        var current = self.cell(rowId, colId);
        if (current) {
          current.classList.remove("is-saving", "is-failed");
          current.classList.add("is-error");
          current.title = message;
        }
        self.say(message, true);
        self.savedAt = 0;
        self.toast("Not saved: " + message, "error");
      });
    }).catch(function () {
      self.enqueue(rowId, colId, value);
      var current = self.cell(rowId, colId);
      if (current) { current.classList.remove("is-saving"); self.showPending(current, value); }
      self.say("Could not save: the change is kept and will be retried.", true);
      self.savedAt = 0;
      self.toast("Not saved yet: the connection failed. The change is kept and will be retried.", "warning");
    });
    this.saving.push(done);
    return done.then(function () { self.saving = self.saving.filter(function (p) { return p !== done; }); });
  };

  // Formula and lookup columns recompute on the server when a cell they read is saved: fetch the
  // window again so their cells show the new results without a reload.
  var COMPUTED = '.grid-col-header[data-col-type="formula"], .grid-col-header[data-col-type="lookup"]';
  Editor.prototype.refreshDependents = function (colId) {
    var header = this.el.querySelector('.grid-col-header[data-col-id="' + colId + '"]');
    if (header && READONLY_TYPES[header.dataset.colType]) { return; }
    if (!this.el.querySelector(COMPUTED)) { return; }
    var grid = window.MorketGrid && window.MorketGrid.get(this.el);
    if (grid) { grid.refresh(); }
  };

  Editor.prototype.enqueue = function (rowId, colId, value) {
    this.dequeue(rowId, colId);
    this.queue.push({rowId: rowId, colId: colId, value: value});
    if (navigator.onLine === false) { this.setOffline(true); }
  };

  Editor.prototype.dequeue = function (rowId, colId) {
    this.queue = this.queue.filter(function (q) { return !(q.rowId === rowId && q.colId === colId); });
  };

  Editor.prototype.flush = function () {
    if (navigator.onLine === false) { return; }
    var self = this, todo = this.queue.slice();
    todo.forEach(function (q) { self.save(q.rowId, q.colId, q.value); });
  };

  Editor.prototype.setOffline = function (offline) {
    if (this.banner) { this.banner.hidden = !offline; }
  };

  // --- range actions ------------------------------------------------------------------------------

  // Saves also say so in a toast, one per grid that updates in place (shell.js replaces a toast of
  // the same key), so a run of edits shows "Saved 4 cells" instead of four toasts.
  Editor.prototype.toast = function (message, kind) {
    if (window.morketToast) { window.morketToast(message, kind || "success", "grid-save:" + this.el.id); }
  };

  Editor.prototype.toastSaved = function () {
    var now = Date.now();
    this.savedRun = this.savedAt && now - this.savedAt < COALESCE_MS ? (this.savedRun || 1) + 1 : 1;
    this.savedAt = now;
    this.toast(this.savedRun === 1 ? "Saved" : "Saved " + this.savedRun + " cells");
  };

  // Why a key or button did nothing: in the status bar and, for screen readers too, a toast.
  Editor.prototype.hint = function (message) {
    this.say(message, true);
    this.toast(message, "warning");
  };

  Editor.prototype.say = function (message, isError) {
    var box = this.toolbar && this.toolbar.querySelector("[data-edit-status]");
    if (!box) { return; }
    box.textContent = message || "";
    box.classList.toggle("is-error", !!isError);
  };

  Editor.prototype.url = function (path) { return this.el.dataset.baseUrl + "/" + path; };

  // Rows on screen are named by id (search results have no view positions); a longer range by
  // its view positions, checked by the top row's id.
  Editor.prototype.rangeData = function (sel) {
    var data = {view: this.el.dataset.viewId || null};
    if (sel.rowIds) { data.row_ids = sel.rowIds.join(","); return data; }
    if (this.searching()) { return null; }
    data.start = sel.start; data.end = sel.end; data.row_id = sel.topRowId;
    return data;
  };

  function cells(n) { return n + (n === 1 ? " cell" : " cells"); }

  // What a range action's toast says: a paste counts its saved cells like single edits do.
  function toastText(path, d) {
    if (path !== "paste") { return d.message || "Done."; }
    var text = "Saved " + cells(d.changed || 0);
    if (d.added_rows) { text += " and added " + d.added_rows + (d.added_rows === 1 ? " row" : " rows"); }
    var problems = d.problems || [];
    if (problems.length) { text += "; " + cells(problems.length) + " left unchanged (" + problems[0].message + ")"; }
    return text;
  }

  Editor.prototype.run = function (path, data, after) {
    var self = this;
    this.say("Working…");
    this.savedAt = 0;
    return Promise.all(this.saving).then(function () { return post(self.url(path), data); }).then(function (resp) {
      return readJson(resp).then(function (body) {
        var grid = window.MorketGrid && window.MorketGrid.get(self.el);
        if (resp.ok) {
          var d = body.data || {};
          var problems = d.problems || [];
          self.say(d.message || "Done.", problems.length > 0);
          // Undoing a column change (a delete, rename, move…) changes the header: the page reloads
          // and shows the server's flashed message; a format change only updates the status bar.
          if (d.reload) { window.location.reload(); return; }
          if (d.column_format && window.MorketNumberFormat) { window.MorketNumberFormat.setHeaderFormat(self.el, d.column_format); }
          self.toast(toastText(path, d), problems.length ? "warning" : (d.kind === null ? "info" : "success"));
          if (grid) { grid.refresh(); }
          if (after) { after(d); }
          return;
        }
        if (resp.status === 409 && grid) { grid.refresh(); }
        var message = (body.error && body.error.message) || "That did not work.";
        self.say(message, true);
        self.toast(message, "error");
      });
    }).catch(function () {
      self.say("Could not reach Morket. Check the connection and try again.", true);
      self.toast("Could not reach Morket. Check the connection and try again; nothing was changed.", "error");
    });
  };

  Editor.prototype.action = function (name, atEnd, button) {
    if (this.editing) { this.commit(0, 0, true); }
    if (!this.canEdit) { return; }
    var sel = this.selection(), self = this;
    if (name === "crm-send") {
      // From the "more" menu: the selected rows when more than one is selected, else the whole table
      // (the push page lets the user change the scope either way).
      var many = sel && sel.rowIds && sel.rowIds.length > 1;
      window.location.assign(crmUrl(button.getAttribute("href"), many ? sel.rowIds : null));
      return;
    }
    if (name === "undo" || name === "redo") { this.run(name, {}); return; }
    if (name === "add-row") {
      var after = this.cursor && !atEnd && !this.searching() ? {after_row_id: this.cursor.rowId} : {};
      this.run("rows/add", after, function () {
        if (!self.cursor || atEnd) {
          var grid = window.MorketGrid && window.MorketGrid.get(self.el);
          if (grid) { grid.scrollToPos(grid.totalRows()); }
        }
      });
      return;
    }
    if (!sel) { this.hint("Select cells first."); return; }
    if (name === "delete-rows") {
      if (!sel.rowIds) { this.hint("Scroll so that every selected row is on screen, then delete."); return; }
      var n = sel.rowIds.length;
      if (!window.confirm("Delete " + n + (n === 1 ? " row" : " rows") + "? Undo brings them back.")) { return; }
      this.run("rows/delete", {row_ids: sel.rowIds.join(",")}, function () { self.cursor = null; self.anchor = null; });
      return;
    }
    var data = this.rangeData(sel);
    if (!data) { this.hint("Clear the search to change this many rows."); return; }
    data.column_ids = sel.colIds.join(",");
    if (name === "fill") {
      if (sel.start === sel.end) { this.hint("Select the cells to fill: the top one is copied down."); return; }
      this.run("fill", data);
    } else if (name === "clear") {
      this.run("clear", data);
    }
  };

  // --- "Send to CRM" for the selection (right-click a cell) -----------------------------------------

  function crmUrl(href, rowIds) {
    return rowIds && rowIds.length ? href + (href.indexOf("?") < 0 ? "?" : "&") + "rows=" + rowIds.join(",") : href;
  }

  Editor.prototype.closeRowMenu = function () {
    if (this.rowMenu) { this.rowMenu.remove(); this.rowMenu = null; }
  };

  // The toolbar's connected CRMs ([data-edit-action=crm-send]) offered for the selected rows.
  Editor.prototype.onContextMenu = function (e) {
    var cell = e.target.closest(".grid-rows .grid-cell");
    if (!cell || e.defaultPrevented || cell.dataset.type === "enrichment" || this.editing) { return; }
    var links = this.toolbar ? this.toolbar.querySelectorAll('[data-edit-action="crm-send"]') : [];
    if (!links.length) { return; }
    var point = this.point(cell), sel = this.selection();
    if (!sel || !sel.rowIds || sel.rowIds.indexOf(point.rowId) < 0) { this.moveTo(point, false); sel = this.selection(); }
    if (!sel || !sel.rowIds) { return; }
    e.preventDefault();
    this.closeRowMenu();
    var menu = document.createElement("div"), n = sel.rowIds.length;
    menu.className = "grid-pop-panel grid-menu grid-row-menu";
    menu.setAttribute("role", "menu");
    menu.setAttribute("aria-label", "Selected rows");
    Array.prototype.forEach.call(links, function (link) {
      var item = document.createElement("a");
      item.className = "grid-menu-item";
      item.setAttribute("role", "menuitem");
      item.href = crmUrl(link.getAttribute("href"), sel.rowIds);
      item.textContent = link.textContent + " (" + n + (n === 1 ? " row)" : " rows)");
      menu.appendChild(item);
    });
    menu.style.setProperty("--pop-left", Math.min(e.clientX, window.innerWidth - 260) + "px");
    menu.style.setProperty("--pop-top", Math.min(e.clientY, window.innerHeight - 120) + "px");
    document.body.appendChild(menu);
    this.rowMenu = menu;
    menu.querySelector("a").focus();
  };

  // --- clipboard ----------------------------------------------------------------------------------

  function quoteTsv(text) {
    return /[\t\n\r"]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
  }

  // The selected cells on screen as TSV, as Excel and Google Sheets write it.
  Editor.prototype.tsv = function () {
    var sel = this.selection();
    if (!sel) { return ""; }
    var lines = [];
    for (var p = sel.start; p <= sel.end; p++) {
      var row = this.rowAt(p);
      if (!row) { continue; }
      lines.push(sel.colIds.map(function (colId) {
        var cell = row.querySelector('.grid-cell[data-col-id="' + colId + '"]');
        return quoteTsv(cell ? cell.dataset.raw || "" : "");
      }).join("\t"));
    }
    this.copied = lines.length * sel.colIds.length;
    return lines.length ? lines.join("\r\n") + "\r\n" : "";
  };

  Editor.prototype.onCopy = function (e) {
    if (this.editing) { return; }
    var tsv = this.tsv();
    if (!tsv) { return; }
    e.clipboardData.setData("text/plain", tsv);
    e.preventDefault();
    this.say("Copied " + this.copied + (this.copied === 1 ? " cell." : " cells."));
    this.toast("Copied " + cells(this.copied), "info");
  };

  Editor.prototype.onPaste = function (e) {
    if (this.editing || !this.canEdit) { return; }
    var text = e.clipboardData ? e.clipboardData.getData("text/plain") : "";
    if (!text) { return; }
    e.preventDefault();
    var data = {view: this.el.dataset.viewId || null, text: text};
    if (this.cursor) {
      data.column_id = this.cursor.colId;
      if (this.searching()) {
        data.row_ids = this.rows().filter(function (r) { return parseInt(r.dataset.pos, 10) >= this.cursor.pos; }, this)
          .map(function (r) { return r.dataset.rowId; }).join(",");
      } else { data.start = this.cursor.pos; data.row_id = this.cursor.rowId; }
    } else {
      data.column_id = this.columns()[0];
      data.start = 0;
    }
    this.run("paste", data);
  };

  function init() {
    document.querySelectorAll(".grid[data-save-url]").forEach(function (el) {
      if (!states.has(el)) { states.set(el, new Editor(el)); }
    });
  }

  // "Undo" in the toast of a deleted column (a flashed "undo" toast): the grid's own undo.
  document.addEventListener("click", function (e) {
    var button = e.target.closest && e.target.closest("[data-toast-undo]");
    if (!button) { return; }
    var el = document.querySelector(".grid[data-save-url]");
    var editor = el && states.get(el);
    if (!editor) { return; }
    button.disabled = true;
    editor.action("undo");
  });

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
