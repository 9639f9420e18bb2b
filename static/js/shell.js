// The app shell: sidebar and drawer, menus, toasts, the command palette and the shortcuts list.
// No framework and no inline script (the CSP forbids it); everything is wired by data attributes.
(function () {
  "use strict";

  var body = document.body;
  var DESKTOP = window.matchMedia("(min-width: 1024px)");
  var COLLAPSED_KEY = "morket:sidebar-collapsed";
  var TOAST_MS = 10000;
  var KEYED_TOAST_MS = 5000;  // a toast that updates in place (grid saves) is shorter-lived

  function store(key, value) {
    try { if (value === null) { localStorage.removeItem(key); } else { localStorage.setItem(key, value); } } catch (e) { /* private mode */ }
  }
  function load(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }
  function typing(el) {
    return el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  // --- sidebar: collapsible on a desktop, a drawer below 1024 px ------------------------------------
  var sidebar = document.getElementById("sidebar");
  var toggle = document.getElementById("sidebar-toggle");
  var backdrop = document.querySelector(".drawer-backdrop");

  function syncToggle() {
    if (!toggle) { return; }
    var open = DESKTOP.matches ? !body.classList.contains("sidebar-collapsed") : body.classList.contains("drawer-open");
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
  }
  function openDrawer() {
    body.classList.add("drawer-open");
    if (backdrop) { backdrop.hidden = false; }
    syncToggle();
    var first = sidebar && sidebar.querySelector("summary, a[href]");
    if (first) { first.focus(); }
  }
  function closeDrawer(returnFocus) {
    if (!body.classList.contains("drawer-open")) { return; }
    body.classList.remove("drawer-open");
    if (backdrop) { backdrop.hidden = true; }
    syncToggle();
    if (returnFocus && toggle) { toggle.focus(); }
  }
  function toggleSidebar() {
    if (!sidebar) { return; }
    if (DESKTOP.matches) {
      var collapsed = body.classList.toggle("sidebar-collapsed");
      store(COLLAPSED_KEY, collapsed ? "1" : null);
      syncToggle();
    } else if (body.classList.contains("drawer-open")) {
      closeDrawer(true);
    } else {
      openDrawer();
    }
  }
  if (sidebar) {
    if (load(COLLAPSED_KEY) === "1") { body.classList.add("sidebar-collapsed"); }
    syncToggle();
    DESKTOP.addEventListener("change", function () { closeDrawer(false); syncToggle(); });
    if (toggle) { toggle.addEventListener("click", toggleSidebar); }
    document.querySelectorAll("[data-drawer-close]").forEach(function (el) {
      el.addEventListener("click", function () { closeDrawer(true); });
    });
  }

  // Recent tables first: the browser remembers the tables this user opened in each workspace.
  var tableList = document.getElementById("sidebar-tables");
  if (tableList) {
    var key = "morket:recent-tables:" + tableList.getAttribute("data-workspace");
    var recent = (load(key) || "").split(",").filter(Boolean);
    var opened = window.location.pathname.match(/\/tables\/(\d+)(?:\/|$)/);
    if (opened) {
      recent = [opened[1]].concat(recent.filter(function (id) { return id !== opened[1]; })).slice(0, 20);
      store(key, recent.join(","));
    }
    recent.slice().reverse().forEach(function (id) {
      var item = tableList.querySelector('li[data-table-id="' + id + '"]');
      if (item) { tableList.insertBefore(item, tableList.firstChild); }
    });
  }

  // --- menus built on <details>: Escape and a click elsewhere close them ---------------------------
  function closeMenus(except) {
    document.querySelectorAll("details.user-menu[open], details.ws-switcher[open]").forEach(function (d) {
      if (d !== except) { d.open = false; }
    });
  }
  document.addEventListener("click", function (e) {
    closeMenus(e.target.closest && e.target.closest("details"));
  });

  // --- toasts ----------------------------------------------------------------------------------------
  var toasts = document.getElementById("toasts");
  var toastTemplate = document.getElementById("toast-template");

  function dismiss(toast) {
    if (!toast || toast.classList.contains("is-leaving")) { return; }
    toast.classList.add("is-leaving");
    window.setTimeout(function () { toast.remove(); }, 220);
  }
  // Errors stay until dismissed; the others leave after a while, paused while hovered or focused.
  function schedule(toast) {
    window.clearTimeout(toast.morketTimer);
    if (toast.classList.contains("flash-error") || toast.classList.contains("toast-error")) { return; }
    var ms = toast.hasAttribute("data-toast-key") ? KEYED_TOAST_MS : TOAST_MS;
    function start() { window.clearTimeout(toast.morketTimer); toast.morketTimer = window.setTimeout(function () { dismiss(toast); }, ms); }
    if (!toast.morketPausable) {
      toast.morketPausable = true;
      toast.addEventListener("mouseenter", function () { window.clearTimeout(toast.morketTimer); });
      toast.addEventListener("focusin", function () { window.clearTimeout(toast.morketTimer); });
      toast.addEventListener("mouseleave", start);
    }
    start();
  }
  // A toast with a key replaces the one on screen with the same key ("Saved" becomes "Saved 3 cells")
  // instead of stacking another. Same kind: the text changes in place, so the toast's own live region
  // (role=status) announces the new text once; another kind (a save that failed) is a new toast.
  function showToast(message, kind, key) {
    if (!toasts || !toastTemplate || !message) { return; }
    kind = kind || "info";
    var toast = null;
    if (key) {
      toasts.querySelectorAll("[data-toast-key]").forEach(function (t) {
        if (t.getAttribute("data-toast-key") === key && !t.classList.contains("is-leaving")) { toast = t; }
      });
      if (toast && !toast.classList.contains("toast-" + kind)) { toast.remove(); toast = null; }
    }
    if (!toast) {
      toast = toastTemplate.content.firstElementChild.cloneNode(true);
      toast.classList.add("toast-" + kind);
      if (kind === "error") { toast.setAttribute("role", "alert"); }
      if (key) { toast.setAttribute("data-toast-key", key); }
      toast.querySelector(".toast-text").textContent = message;
      toasts.appendChild(toast);
    } else if (toast.querySelector(".toast-text").textContent !== message) {
      toast.querySelector(".toast-text").textContent = message;
    }
    schedule(toast);
    return toast;
  }
  window.morketToast = showToast;
  if (toasts) {
    toasts.querySelectorAll("[data-toast]").forEach(schedule);
    toasts.addEventListener("click", function (e) {
      if (e.target.closest("[data-toast-close]")) { dismiss(e.target.closest("[data-toast]")); }
    });
  }
  // A response asks for toasts with HX-Trigger: {"morket:toast": {"toasts": [{message, kind, key?}]}}.
  document.addEventListener("morket:toast", function (e) {
    ((e.detail && e.detail.toasts) || []).forEach(function (t) { showToast(t.message, t.kind, t.key); });
  });
  // An htmx request that failed and that no page script placed: say what happened.
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr, text = "";
    var holder = document.createElement("template");
    holder.innerHTML = xhr.responseText || "";
    var fragment = holder.content.querySelector("[data-error-message]");
    text = fragment ? fragment.textContent.trim() : "The request failed (" + xhr.status + "). Reload the page and try again.";
    showToast(text, "error");
  });
  document.addEventListener("htmx:sendError", function () {
    showToast("Morket could not be reached. Check your connection; nothing was saved.", "error");
  });

  // --- command palette ---------------------------------------------------------------------------------
  var palette = document.getElementById("palette");
  var shortcuts = document.getElementById("shortcuts");
  var input = document.getElementById("palette-input");
  var list = document.getElementById("palette-list");
  var empty = document.getElementById("palette-empty");
  var status = document.getElementById("palette-status");
  var tablesUrl = palette && palette.getAttribute("data-tables-url");
  var items = [], found = [], shown = [], selected = 0, asked = 0, timer = null;
  var SEARCH_MS = 150;

  function kindOf(el) {
    if (el.closest("#sidebar-tables")) { return "Table"; }
    if (el.closest("#main")) { return "Action"; }
    return "Go to";
  }
  function collect() {
    var seen = {}, found = [];
    var candidates = document.querySelectorAll(
      "[data-palette-label], #main a.button, #main button.primary, #main [data-palette-action]"
    );
    candidates.forEach(function (el) {
      if (el.closest("dialog") || el.closest("[data-confirm]") || el.classList.contains("danger")) { return; }
      // Hidden controls of the page are left out, except its menus' actions marked for the palette.
      var hidden = el.closest("#main") && !el.getClientRects().length && !el.hasAttribute("data-palette-action");
      if (el.disabled || hidden) { return; }
      var label = (el.getAttribute("data-palette-label") || el.getAttribute("aria-label") || el.textContent || "").replace(/\s+/g, " ").trim();
      if (!label || seen[label.toLowerCase()]) { return; }
      seen[label.toLowerCase()] = true;
      found.push({label: label, kind: kindOf(el), el: el, url: el.getAttribute("href"), keywords: el.getAttribute("data-palette-keywords") || ""});
    });
    // The pages the sidebar does not list (search, exports, imports), from the palette's inert template.
    var pages = document.getElementById("palette-pages");
    if (pages && pages.content) {
      pages.content.querySelectorAll("a[data-palette-label]").forEach(function (a) {
        var label = a.getAttribute("data-palette-label");
        if (seen[label.toLowerCase()]) { return; }
        seen[label.toLowerCase()] = true;
        found.push({label: label, kind: "Go to", url: a.getAttribute("href"), keywords: a.getAttribute("data-palette-keywords") || ""});
      });
    }
    return found;
  }
  // Tables the server found by name (any table of the workspace, not only the sidebar's eight),
  // merged with the page's items: a table the sidebar already lists is not listed twice.
  function recentTables() {
    var slug = palette.getAttribute("data-workspace");
    return slug ? (load("morket:recent-tables:" + slug) || "").split(",").filter(Boolean) : [];
  }
  function merged() {
    var urls = {}, all = items.slice();
    items.forEach(function (it) { if (it.url) { urls[it.url] = true; } });
    var recent = recentTables();
    found.forEach(function (t) {
      if (urls[t.url]) { return; }
      urls[t.url] = true;
      var rank = recent.indexOf(String(t.id));
      all.push({label: "Table: " + t.name, kind: "Table", url: t.url, server: true, recent: rank < 0 ? 99 : rank, keywords: t.folder || ""});
    });
    return all;
  }
  function searchTables() {
    if (!tablesUrl) { return; }
    var mine = ++asked;
    fetch(tablesUrl + "?q=" + encodeURIComponent(input.value.trim()), {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (resp) { return resp.ok ? resp.json() : null; })
      .then(function (body) {
        if (mine !== asked || !palette.open || !body || !body.data) { return; }
        found = body.data.tables || [];
        render();
      })
      .catch(function () { return null; });
  }
  function score(label, query) {
    if (!query) { return 1; }
    var l = label.toLowerCase(), at = l.indexOf(query);
    if (at === 0) { return 100; }
    if (at > 0) { return 80 - Math.min(at, 40) + (l.charAt(at - 1) === " " ? 10 : 0); }
    var i = 0;
    for (var j = 0; j < l.length && i < query.length; j++) { if (l.charAt(j) === query.charAt(i)) { i++; } }
    return i === query.length ? 10 : 0;
  }
  function render() {
    var query = input.value.trim().toLowerCase();
    shown = merged().map(function (it) {
      var s = Math.max(score(it.label, query), it.keywords ? score(it.keywords, query) - 5 : 0);
      return {it: it, s: s};
    })
      .filter(function (r) { return r.s > 0; })
      .sort(function (a, b) { return b.s - a.s || (a.it.recent || 0) - (b.it.recent || 0); })
      .slice(0, 50)
      .map(function (r) { return r.it; });
    selected = Math.min(selected, Math.max(shown.length - 1, 0));
    list.textContent = "";
    shown.forEach(function (it, i) {
      var li = document.createElement("li");
      li.id = "palette-option-" + i;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", i === selected ? "true" : "false");
      var label = document.createElement("span");
      label.textContent = it.label;
      var kind = document.createElement("span");
      kind.className = "palette-kind";
      kind.textContent = it.kind;
      li.appendChild(label);
      li.appendChild(kind);
      li.addEventListener("click", function () { choose(i); });
      li.addEventListener("mousemove", function () { if (selected !== i) { selected = i; mark(); } });
      list.appendChild(li);
    });
    empty.hidden = shown.length > 0;
    if (status) { status.textContent = shown.length ? shown.length + (shown.length === 1 ? " result" : " results") : "No results"; }
    mark();
  }
  function mark() {
    Array.prototype.forEach.call(list.children, function (li, i) {
      li.setAttribute("aria-selected", i === selected ? "true" : "false");
      if (i === selected) { li.scrollIntoView({block: "nearest"}); }
    });
    if (shown.length) { input.setAttribute("aria-activedescendant", "palette-option-" + selected); }
    else { input.removeAttribute("aria-activedescendant"); }
  }
  function choose(i) {
    var it = shown[i];
    if (!it) { return; }
    palette.close();
    if (it.el && it.el.isConnected) { it.el.click(); } else if (it.url) { window.location.assign(it.url); }
  }
  function openPalette() {
    if (!palette || palette.open) { return; }
    closeMenus(null);
    closeDrawer(false);
    if (shortcuts && shortcuts.open) { shortcuts.close(); }
    items = collect();
    found = [];
    input.value = "";
    selected = 0;
    render();
    palette.showModal();
    input.focus();
    searchTables();
  }
  function openShortcuts() {
    if (!shortcuts || shortcuts.open) { return; }
    closeMenus(null);
    if (palette && palette.open) { palette.close(); }
    shortcuts.showModal();
  }
  if (palette) {
    input.addEventListener("input", function () {
      selected = 0;
      render();
      window.clearTimeout(timer);
      timer = window.setTimeout(searchTables, SEARCH_MS);
    });
    input.addEventListener("keydown", function (e) {
      if (e.key === "ArrowDown") { e.preventDefault(); selected = Math.min(selected + 1, shown.length - 1); mark(); }
      else if (e.key === "ArrowUp") { e.preventDefault(); selected = Math.max(selected - 1, 0); mark(); }
      else if (e.key === "Enter") { e.preventDefault(); choose(selected); }
    });
    palette.addEventListener("click", function (e) { if (e.target === palette) { palette.close(); } });
    document.querySelectorAll("[data-palette-open]").forEach(function (el) { el.addEventListener("click", openPalette); });
  }
  if (shortcuts) {
    shortcuts.addEventListener("click", function (e) { if (e.target === shortcuts) { shortcuts.close(); } });
    document.querySelectorAll("[data-shortcuts-open]").forEach(function (el) { el.addEventListener("click", openShortcuts); });
  }

  // --- keyboard ------------------------------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    var mod = e.ctrlKey || e.metaKey;
    if (mod && !e.altKey && (e.key === "k" || e.key === "K") && palette) {
      e.preventDefault();
      if (palette.open) { palette.close(); } else { openPalette(); }
      return;
    }
    if (mod && e.key === "\\" && sidebar) { e.preventDefault(); toggleSidebar(); return; }
    if (e.key === "Escape") {
      var menu = document.querySelector("details.user-menu[open], details.ws-switcher[open]");
      if (menu) { menu.open = false; menu.querySelector("summary").focus(); return; }
      if (body.classList.contains("drawer-open")) { closeDrawer(true); }
      return;
    }
    // "?" lists the shortcuts, unless the key is being typed somewhere (the grid types it into a cell).
    if (e.key === "?" && !mod && !e.altKey && !e.defaultPrevented && !typing(e.target)) {
      e.preventDefault();
      openShortcuts();
    }
  });
})();
