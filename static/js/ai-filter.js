/* The grid's "describe the rows you want" box: a refused description (422), too few credits (402)
   or a model that did not answer (502) still swaps its message into the box's result area. */
(function () {
  "use strict";
  document.addEventListener("htmx:beforeSwap", function (e) {
    var target = e.detail.target;
    var status = e.detail.xhr.status;
    if (target && target.closest && target.closest(".nl-filter") && (status === 402 || status === 422 || status === 502)) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
    }
  });
})();
