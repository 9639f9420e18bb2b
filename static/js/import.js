// CSV import page: drop a file on the upload zone, and switch the destination table on change.
(function () {
  "use strict";

  function showName(zone, input) {
    var label = zone.querySelector("[data-import-file-name]");
    if (label) label.textContent = input.files && input.files.length ? input.files[0].name : "";
  }

  function wireDrop(zone) {
    var input = zone.querySelector("input[type=file]");
    var form = zone.closest("form");
    if (!input || !form) return;
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) {
        e.preventDefault();
        zone.classList.add("is-dragging");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("is-dragging"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      input.files = e.dataTransfer.files;
      showName(zone, input);
      form.requestSubmit();
    });
    input.addEventListener("change", function () { showName(zone, input); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-import-drop]").forEach(wireDrop);
    document.querySelectorAll("[data-import-destination]").forEach(function (select) {
      select.addEventListener("change", function () { select.form.requestSubmit(); });
    });
  });
})();
