// Workspace pages: let htmx swap in the row that explains a refused change (422/403/409),
// so an error shows where the user acted instead of being dropped.
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (e) {
    var status = e.detail.xhr.status;
    if ((status === 403 || status === 409 || status === 422) && e.detail.target && e.detail.target.id.indexOf("member-") === 0) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();
