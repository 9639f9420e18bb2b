// Small, framework-free helpers. No inline scripts: the CSP forbids them.
(function () {
  "use strict";
  // Confirm destructive actions marked with data-confirm (forms and htmx requests alike).
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { e.preventDefault(); e.stopPropagation(); }
  }, true);
  // Select-on-focus for one-time secrets so they are easy to copy.
  document.addEventListener("focusin", function (e) {
    if (e.target.matches && e.target.matches("[data-select-on-focus]")) { e.target.select(); }
  });
})();
