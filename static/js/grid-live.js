// The live grid: what others (or workers) change in this table shows in the open grid within a
// second, without a reload. The page's [data-grid-live] names the grid and its stream
// (server-sent events, one "change" per committed write); on a change the grid fetches the window
// it shows again, so the scroll position, the selection and an open editor stay (grid-edit.js
// finds them again by row id). An update of rows that are not on screen fetches nothing.
// When the stream cannot be held (the server has no slot left, or it is gone), the grid falls back
// to fetching as it scrolls and, for tables with an inbound source, to a 3-second pulse; it tries
// the stream again a little later. A hidden tab lets its stream go, and catches up when shown.
(function () {
  "use strict";

  var PULSE_MS = 3000;
  var RETRY_MS = 30000;
  var HIDDEN_CLOSE_MS = 30000;
  var SETTLE_MS = 150;        // changes arriving together are fetched once

  function watch(el) {
    var gridEl = document.getElementById(el.dataset.gridLive);
    if (!gridEl) { return; }
    var liveUrl = el.dataset.liveUrl, pulseUrl = el.dataset.pulseUrl;
    var source = null, lastSeq = null, retryTimer = null, hiddenTimer = null;
    var pulseTimer = null, lastStamp = null, pulseBusy = false;
    var refreshTimer = null;

    function grid() { return window.MorketGrid ? window.MorketGrid.get(gridEl) : null; }
    function state(s) { gridEl.dataset.live = s; }

    function refreshSoon() {
      if (refreshTimer !== null) { return; }
      refreshTimer = window.setTimeout(function () {
        refreshTimer = null;
        var g = grid();
        if (!g) { return; }
        if (g.busy && g.busy()) { refreshSoon(); return; }  // a scroll's fetch is on its way: after it
        g.refresh();
      }, SETTLE_MS);
    }

    function concerns(data) {
      if (!data || !data.rows || !data.kinds) { return true; }
      for (var i = 0; i < data.kinds.length; i++) {
        if (data.kinds[i] !== "updated" && data.kinds[i] !== "cells") { return true; }  // rows came or went
      }
      for (var j = 0; j < data.rows.length; j++) {
        if (gridEl.querySelector('.grid-row[data-row-id="' + data.rows[j] + '"]')) { return true; }
      }
      return false;
    }

    function open() {
      if (source || !liveUrl || !window.EventSource) { return; }
      var url = liveUrl + (lastSeq !== null ? "?last=" + encodeURIComponent(lastSeq) : "");
      source = new EventSource(url, {withCredentials: true});
      source.addEventListener("hello", function (e) {
        state("open");
        stopPulse();
        var seq = parseInt(e.lastEventId, 10);
        if (lastSeq !== null && seq > lastSeq) { refreshSoon(); }
        if (!isNaN(seq)) { lastSeq = seq; }
      });
      source.addEventListener("change", function (e) {
        var data = null;
        try { data = JSON.parse(e.data); } catch (err) { data = null; }
        if (data && typeof data.seq === "number") { lastSeq = Math.max(lastSeq || 0, data.seq); }
        if (concerns(data)) { refreshSoon(); }
      });
      source.onerror = function () {
        if (!source || source.readyState !== EventSource.CLOSED) { state("reconnecting"); return; }
        // Refused (no slot left, signed out, gone): fall back, and try the stream again later.
        source = null;
        state("fallback");
        startPulse();
        window.clearTimeout(retryTimer);
        retryTimer = window.setTimeout(open, RETRY_MS);
      };
    }

    function close() {
      if (source) { source.close(); source = null; }
      state("paused");
    }

    function pulse() {
      if (pulseBusy || document.hidden || !pulseUrl) { return; }
      pulseBusy = true;
      fetch(pulseUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}}).then(function (resp) {
        return resp.ok ? resp.json() : null;
      }).then(function (got) {
        if (!got) { return; }
        if (lastStamp !== null && got.stamp !== lastStamp) { refreshSoon(); }
        lastStamp = got.stamp;
      }).catch(function () { /* offline: the next tick tries again */ }).then(function () { pulseBusy = false; });
    }
    function startPulse() {
      if (pulseTimer !== null || !pulseUrl) { return; }
      pulse();
      pulseTimer = window.setInterval(pulse, PULSE_MS);
    }
    function stopPulse() {
      if (pulseTimer !== null) { window.clearInterval(pulseTimer); pulseTimer = null; }
    }

    document.addEventListener("visibilitychange", function () {
      if (document.hidden) {
        hiddenTimer = window.setTimeout(close, HIDDEN_CLOSE_MS);
        return;
      }
      window.clearTimeout(hiddenTimer);
      if (!source) { open(); }
      if (pulseTimer !== null) { pulse(); }
    });
    window.addEventListener("pagehide", close);

    if (liveUrl && window.EventSource) { open(); } else { state("fallback"); startPulse(); }
  }

  function init() { document.querySelectorAll("[data-grid-live]").forEach(watch); }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
