// The header's search box: htmx fetches the suggestions as you type (debounced); this script shows
// and hides the list and moves through it with the arrow keys (Enter opens, Escape closes).
(function () {
  "use strict";
  function init(form) {
    var input = form.querySelector(".search-input");
    var list = form.querySelector(".search-typeahead");
    if (!input || !list) { return; }
    var options = function () { return Array.prototype.slice.call(list.querySelectorAll("[role=option]")); };
    var active = -1;
    function mark(i) {
      var opts = options();
      opts.forEach(function (o, j) { o.setAttribute("aria-selected", j === i ? "true" : "false"); });
      active = i;
      if (i >= 0 && opts[i]) {
        input.setAttribute("aria-activedescendant", opts[i].id);
        opts[i].scrollIntoView({block: "nearest"});
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }
    function show(open) {
      list.hidden = !open;
      input.setAttribute("aria-expanded", open ? "true" : "false");
      if (!open) { mark(-1); }
    }
    list.addEventListener("htmx:afterSwap", function () {
      mark(-1);
      show(input.value.trim() !== "" && list.children.length > 0 && document.activeElement === input);
    });
    input.addEventListener("keydown", function (e) {
      var opts = options();
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        if (list.hidden && opts.length) { show(true); }
        if (!opts.length) { return; }
        e.preventDefault();
        var next = e.key === "ArrowDown" ? active + 1 : active - 1;
        if (next >= opts.length) { next = 0; }
        if (next < 0) { next = opts.length - 1; }
        mark(next);
      } else if (e.key === "Enter" && !list.hidden && active >= 0 && opts[active]) {
        e.preventDefault();
        window.location.assign(opts[active].href);
      } else if (e.key === "Escape") {
        if (!list.hidden) { e.preventDefault(); show(false); } else { input.blur(); }
      }
    });
    input.addEventListener("focus", function () { if (input.value.trim() && options().length) { show(true); } });
    document.addEventListener("click", function (e) { if (!form.contains(e.target)) { show(false); } });
    form.addEventListener("submit", function (e) { if (!input.value.trim()) { e.preventDefault(); } });
  }
  function start() { document.querySelectorAll("[data-search-box]").forEach(init); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
