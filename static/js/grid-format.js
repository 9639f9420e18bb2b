// Number formats in the grid: the column header's "Format…" popover (a live example as the
// fields change; after a save the grid fetches its window again, so the column's cells show the
// new format without a reload) and the one number formatter the status bar uses for sums and
// averages. Formats come from the server (tables/number_format.py, format_json):
// {decimals: null | 0..10, thousands: bool, suffix: "" | "%" | " USD"}.
(function () {
  "use strict";

  var EXAMPLE = 1234.5;

  // Round half to even, as the server's Decimal formatting does, then group.
  function format(n, fmt, fallbackDecimals) {
    if (n === null || n === undefined || !isFinite(n)) { return ""; }
    fmt = fmt || {};
    var places = fmt.decimals === null || fmt.decimals === undefined ? null : fmt.decimals;
    var options = {useGrouping: fmt.thousands !== false};
    if (places === null) { options.maximumFractionDigits = fallbackDecimals === undefined ? 20 : fallbackDecimals; }
    else { options.minimumFractionDigits = places; options.maximumFractionDigits = places; options.roundingMode = "halfEven"; }
    var text = n.toLocaleString("en-US", options);
    if (/^-[0.,]*$/.test(text)) { text = text.slice(1); }
    return text + (fmt.suffix || "");
  }

  function headerFormat(grid, colId) {
    var header = grid.querySelector('.grid-col-header[data-col-id="' + colId + '"]');
    if (!header || !header.dataset.format) { return null; }
    try { return JSON.parse(header.dataset.format); } catch (e) { return null; }
  }

  function formFormat(form) {
    var decimals = form.querySelector("[data-format-decimals]").value;
    var style = form.querySelector("[data-format-style]");
    var currency = form.querySelector("[data-format-currency]");
    var fixed = form.querySelector("[data-format-suffix]");
    var kind = style ? style.value : (currency ? "currency" : "plain");
    var suffix = fixed ? fixed.value : kind === "percent" ? "%" : kind === "currency" && currency ? " " + currency.value : "";
    if (decimals === "auto" && kind === "currency") { decimals = "2"; }
    return {decimals: decimals === "auto" ? null : parseInt(decimals, 10),
            thousands: form.querySelector("[data-format-thousands]").checked, suffix: suffix};
  }

  function update(form) {
    var style = form.querySelector("[data-format-style]");
    var currency = form.querySelector(".columns-for-currency");
    if (style && currency) { currency.hidden = style.value !== "currency"; }
    var out = form.querySelector("[data-format-example]");
    if (out) { out.textContent = format(EXAMPLE, formFormat(form)); }
  }

  document.addEventListener("change", function (e) {
    var form = e.target.closest && e.target.closest("[data-format-form]");
    if (form) { update(form); }
  });

  // The popover swapped in: its first field takes the keyboard (Escape closes it and the focus
  // returns to the column's header, as for the column menu).
  document.addEventListener("htmx:afterSwap", function (e) {
    var form = e.detail.target && e.detail.target.querySelector && e.detail.target.querySelector("[data-format-form]");
    if (!form) { return; }
    update(form);
    var first = form.querySelector("select");
    if (first) { first.focus(); }
  });

  // Saved (HX-Trigger "morket:column-format"): keep the format on the header, refetch the window.
  document.addEventListener("morket:column-format", function (e) {
    var detail = e.detail || {};
    document.querySelectorAll('.grid-col-header[data-col-id="' + detail.column_id + '"]').forEach(function (header) {
      header.dataset.format = JSON.stringify(detail.format);
      var grid = header.closest(".grid");
      var api = window.MorketGrid && window.MorketGrid.get(grid);
      if (api) { api.refresh(); }
      var popover = document.querySelector(".columns-popover:not([hidden])");
      if (popover) { popover.hidden = true; popover.innerHTML = ""; }
      header.focus();
    });
  });

  // Undo or redo of a format change answers with the column's format now ({column_id, format}):
  // the header keeps it, so the status bar formats the next sums with it.
  function setHeaderFormat(grid, columnFormat) {
    var header = grid.querySelector('.grid-col-header[data-col-id="' + columnFormat.column_id + '"]');
    if (header) { header.dataset.format = JSON.stringify(columnFormat.format); }
  }

  window.MorketNumberFormat = {format: format, headerFormat: headerFormat, setHeaderFormat: setHeaderFormat};
})();
