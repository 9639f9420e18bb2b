"""One Chromium per worker process, reused across jobs, behind an egress proxy that checks every connection.

The pool keeps one browser, one context and one page. The context (and with it the fingerprint
and proxy) is recycled after ``recycle_pages`` pages; the browser is relaunched when its
processes grow by ``recycle_mb`` over their size after launch, when it crashes or disconnects,
and when a page hangs past its deadline (a watchdog thread kills the browser's processes, which
is the one thing that stops a renderer spinning in JavaScript; Playwright then fails the call
and the next fetch relaunches).

Every connection the browser opens goes through the egress proxy (``egress.py``), which resolves
and checks the destination itself and is the boundary: nothing the page runs can reach an
address the guard refuses. In front of it, request interception uses the DevTools Fetch domain
on the page's own session, not Playwright's ``route``: ``route`` does not see redirects, and
every hop of a redirect chain is checked. This second layer names what was refused and lets a
refused navigation end the load as ``blocked``; it does not see workers, which is why the
proxy is the boundary. Site isolation is off so that cross-site iframes live in the page's
renderer and pass the same check; service workers are blocked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from morket.core.urlsafety import UnsafeUrl, host_port
from morket.scraping.egress import EgressProxy, chromium_proxy_args
from morket.scraping.netguard import RequestGuard
from morket.scraping.politeness import Fingerprint, pick_fingerprint

log = logging.getLogger("morket.scraping")

SNAPSHOT_JS = (Path(__file__).parent / "extractors" / "snapshot.js").read_text()
# Page APIs that open connections the request check cannot see (WebSocket, WebRTC's UDP,
# WebTransport): removed before any page script runs.
NO_RAW_SOCKETS_JS = (
    "for (const n of ['WebSocket','RTCPeerConnection','webkitRTCPeerConnection','WebTransport'])"
    " { try { delete window[n]; Object.defineProperty(window, n, {value: undefined}); } catch (e) {} }"
)
# Counts the page's own fetch and XHR calls still open, so the snapshot can wait for content a
# script loads after the load event (JavaScript-rendered sites) without a fixed network-idle pause.
PENDING_JS = """(() => {
  let pending = 0;
  const done = () => setTimeout(() => { pending -= 1; }, 50);
  Object.defineProperty(window, '__morketPending', { get: () => pending });
  const f = window.fetch;
  if (f) window.fetch = function (...a) { pending += 1; const p = f.apply(this, a); p.then(done, done); return p; };
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...a) {
    pending += 1; this.addEventListener('loadend', done, { once: true }); return send.apply(this, a);
  };
})();"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
    "--mute-audio",
    "--disable-site-isolation-trials",
    "--disable-features=IsolateOrigins,site-per-process,Translate,MediaRouter",
]
IDLE_WAIT_SECONDS = 2.0
MEDIA_PATTERNS = tuple(
    f"*.{ext}*"
    for ext in (
        "png",
        "jpg",
        "jpeg",
        "gif",
        "webp",
        "avif",
        "svg",
        "ico",
        "woff",
        "woff2",
        "ttf",
        "otf",
        "mp4",
        "webm",
        "mp3",
        "m4a",
    )
)
MEMORY_CHECK_EVERY = 20


class FetchError(Exception):
    """A page could not be read; ``kind`` classifies it (blocked, timeout, too_large, crashed, network, http)."""

    def __init__(self, kind: str, message: str, *, status: int | None = None, transient: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.transient = transient


@dataclass
class PoolSettings:
    """What the pool needs from the MORKET_* settings."""

    chromium_path: str = ""
    host_rules: str = ""
    allowlist: tuple[str, ...] = ()
    page_timeout: float = 20.0
    max_bytes: int = 10 * 1024 * 1024
    recycle_pages: int = 200
    recycle_mb: int = 1024
    js_heap_mb: int = 512
    proxies: tuple[str, ...] = ()
    egress_proxy: str = ""

    @classmethod
    def from_config(cls, settings: dict[str, Any]) -> PoolSettings:
        return cls(
            chromium_path=settings.get("CHROMIUM_PATH") or "",
            host_rules=settings.get("SCRAPE_HOST_RESOLVER_RULES") or "",
            allowlist=tuple(settings.get("SCRAPE_ALLOWLIST") or ()),
            page_timeout=float(settings.get("SCRAPE_PAGE_TIMEOUT") or 20),
            max_bytes=int(settings.get("SCRAPE_MAX_BYTES") or 10 * 1024 * 1024),
            recycle_pages=int(settings.get("SCRAPE_RECYCLE_PAGES") or 200),
            recycle_mb=int(settings.get("SCRAPE_RECYCLE_MB") or 1024),
            proxies=tuple(settings.get("SCRAPE_PROXIES") or ()),
            egress_proxy=settings.get("SCRAPE_EGRESS_PROXY") or "",
        )


@dataclass
class PageResult:
    """What one page load produced: where it ended, its status, the DOM snapshot and a screenshot."""

    url: str
    final_url: str
    status: int
    snapshot: dict[str, Any]
    screenshot: bytes | None
    redirects: list[str]
    blocked: list[str]
    bytes: int
    elapsed_ms: int
    proxy: str | None = None


@dataclass
class _PageState:
    """Per-load bookkeeping filled by DevTools events."""

    main_frame: str = ""
    bytes: int = 0
    too_large: bool = False
    nav_blocked: str | None = None
    blocked: list[str] = field(default_factory=list)
    # Where the egress proxy's refusal record stood when the load began.
    egress_mark: int = 0
    dom_ready: bool = False
    documents: list[str] = field(default_factory=list)


def chromium_executable(configured: str) -> str | None:
    """Return the Chromium binary to launch: the setting, else Debian's, else Playwright's own."""
    for candidate in (configured, "/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


class BrowserPool:
    """A reusable browser for one process; not thread-safe (one job at a time, as RQ runs them)."""

    def __init__(self, settings: PoolSettings, proxy_picker: Any = None) -> None:
        self.settings = settings
        self.guard = RequestGuard.from_settings(settings.allowlist, settings.host_rules)
        self.proxy_picker = proxy_picker
        self.launches = 0
        self.pages = 0
        self.context_pages = 0
        self.peak_rss_mb = 0.0
        self._baseline_mb: float | None = None
        self._playwright: Any = None
        self._browser: Any = None
        self._context: Any = None
        self._page: Any = None
        self._cdp: Any = None
        self._state = _PageState()
        self._fingerprint: Fingerprint | None = None
        self._proxy: str | None = None
        self._media_blocked = False
        self._driver_pids: list[int] = []
        self._egress: EgressProxy | None = None
        # One egress proxy per upstream proxy of SCRAPE_PROXIES: it checks, then forwards to that proxy.
        self._upstream_egresses: dict[str, EgressProxy] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def _egress_url(self) -> str:
        """The proxy every browser connection goes through: the configured one, else ours (started here)."""
        if self.settings.egress_proxy:
            return self.settings.egress_proxy
        if self._egress is None:
            self._egress = EgressProxy(self.settings.allowlist, self.settings.host_rules)
        if not self._egress.alive():
            self._egress.start()
        return self._egress.url

    def _upstream_egress(self, upstream: str) -> str:
        """The egress proxy a context that uses ``upstream`` goes through (never the upstream directly)."""
        if self.settings.egress_proxy:
            return self.settings.egress_proxy  # the external egress chooses its own way out
        egress = self._upstream_egresses.get(upstream)
        if egress is None:
            egress = self._upstream_egresses[upstream] = EgressProxy(
                self.settings.allowlist, self.settings.host_rules, upstream=upstream
            )
        if not egress.alive():
            egress.start()
        return egress.url

    def _context_egress(self) -> EgressProxy | None:
        """Our egress proxy that the current context's connections go through (None for an external one)."""
        if self.settings.egress_proxy:
            return None
        return self._upstream_egresses.get(self._proxy) if self._proxy else self._egress

    def _launch(self) -> None:
        from playwright.sync_api import sync_playwright

        self._close_browser()
        egress = self._egress_url()
        before = _child_pids()
        self._playwright = sync_playwright().start()
        # The driver this start spawned: the browser is its child, and only its processes are ours
        # to kill (the same process may run other browsers, a test's for one).
        self._driver_pids = sorted(_child_pids() - before)
        # The host rules are the egress proxy's: the browser resolves no name itself.
        args = [
            *CHROMIUM_ARGS,
            *chromium_proxy_args(egress),
            f"--js-flags=--max-old-space-size={self.settings.js_heap_mb}",
        ]
        executable = chromium_executable(self.settings.chromium_path)
        self._browser = self._playwright.chromium.launch(executable_path=executable, args=args, headless=True)
        self.launches += 1
        self._baseline_mb = None
        log.info("browser launched", extra={"data": {"launches": self.launches}})

    def _new_page(self) -> None:
        if self._context is None:
            self._fingerprint = pick_fingerprint()
            self._proxy = self.proxy_picker.pick() if self.proxy_picker is not None else None
            options: dict[str, Any] = dict(
                user_agent=matching_user_agent(self._fingerprint.user_agent, self._browser.version),
                viewport={"width": self._fingerprint.width, "height": self._fingerprint.height},
                locale=self._fingerprint.locale,
                timezone_id=self._fingerprint.timezone,
                service_workers="block",
                accept_downloads=False,
                java_script_enabled=True,
            )
            if self._proxy:
                options["proxy"] = {"server": self._upstream_egress(self._proxy), "bypass": "<-loopback>"}
            self._context = self._browser.new_context(**options)
            self._context.add_init_script(NO_RAW_SOCKETS_JS + "\n" + PENDING_JS)
            self.context_pages = 0
        page = self._context.new_page()
        cdp = self._context.new_cdp_session(page)
        cdp.on("Fetch.requestPaused", self._on_paused)
        # Bytes are counted as they arrive, so a page without a declared size is cut off at the cap.
        cdp.on("Network.dataReceived", self._on_data)
        cdp.on("Network.responseReceived", self._on_response)
        cdp.send("Network.enable", {"maxTotalBufferSize": 0, "maxResourceBufferSize": 0})
        page.on("domcontentloaded", self._on_dom_ready)
        cdp.send(
            "Fetch.enable",
            {
                "patterns": [
                    {"urlPattern": "*", "requestStage": "Request"},
                ]
            },
        )
        self._state.main_frame = cdp.send("Page.getFrameTree")["frameTree"]["frame"]["id"]
        self._page, self._cdp = page, cdp
        self._media_blocked = False

    def _block_media(self, block: bool) -> None:
        """Skip images, fonts and media unless a screenshot wants them: extraction reads the DOM only.

        Blocked inside the browser by URL pattern, so they cost no interception round trip.
        """
        if block != self._media_blocked and self._cdp is not None:
            self._cdp.send("Network.setBlockedURLs", {"urls": list(MEDIA_PATTERNS) if block else []})
            self._media_blocked = block

    def _drop_page(self) -> None:
        page, self._page, self._cdp = self._page, None, None
        if page is not None:
            with contextlib.suppress(Exception):
                page.close()

    def _drop_context(self) -> None:
        self._drop_page()
        context, self._context = self._context, None
        if context is not None:
            with contextlib.suppress(Exception):
                context.close()

    def close(self) -> None:
        """Close the page, context, browser, driver and egress proxy (safe to call on a dead browser)."""
        self._close_browser()
        for egress in (self._egress, *self._upstream_egresses.values()):
            if egress is not None:
                egress.stop()

    def _close_browser(self) -> None:
        self._drop_context()
        leftovers = self._browser_processes()
        for attr in ("_browser", "_playwright"):
            thing = getattr(self, attr)
            setattr(self, attr, None)
            if thing is None:
                continue
            with contextlib.suppress(Exception):
                thing.close() if attr == "_browser" else thing.stop()
        for proc in leftovers:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        self._driver_pids = []

    def _ready(self) -> None:
        # A browser whose egress proxy died is relaunched with a new one (it cannot connect anywhere).
        egress_lost = self._egress is not None and not self.settings.egress_proxy and not self._egress.alive()
        if self._browser is None or not self._browser.is_connected() or egress_lost:
            self._launch()
        if self._page is None or self._page.is_closed():
            self._new_page()

    # --- DevTools events --------------------------------------------------------------------------

    def _on_paused(self, event: dict[str, Any]) -> None:
        cdp, request_id = self._cdp, event["requestId"]
        if cdp is None:
            return
        try:
            url = event["request"]["url"]
            is_nav = event.get("resourceType") == "Document" and event.get("frameId") == self._state.main_frame
            reason = self.guard.refusal(url)
            if reason is None:
                if is_nav:
                    self._state.documents.append(url)
                cdp.send("Fetch.continueRequest", {"requestId": request_id})
                return
            self._state.blocked.append(url)
            if is_nav and self._state.nav_blocked is None:
                self._state.nav_blocked = reason
            cdp.send("Fetch.failRequest", {"requestId": request_id, "errorReason": "BlockedByClient"})
        except Exception:  # the page went away under us; the load reports it
            log.debug("request interception failed", exc_info=True)

    def _on_dom_ready(self, _page: Any) -> None:
        self._state.dom_ready = True

    def _on_response(self, event: dict[str, Any]) -> None:
        response = event.get("response") or {}
        headers = response.get("headers") or {}
        length = next((v for k, v in headers.items() if k.lower() == "content-length"), None)
        if isinstance(length, str) and length.isdigit() and int(length) > self.settings.max_bytes:
            self._too_large()

    def _too_large(self) -> None:
        if self._state.too_large:
            return
        self._state.too_large = True
        # Navigating away is what ends a load that is still streaming (stopLoading is not).
        with contextlib.suppress(Exception):
            if self._cdp is not None:
                self._cdp.send("Page.navigate", {"url": "about:blank"})

    def _on_data(self, event: dict[str, Any]) -> None:
        state = self._state
        state.bytes += int(event.get("encodedDataLength") or event.get("dataLength") or 0)
        if state.bytes > self.settings.max_bytes:
            self._too_large()

    # --- watchdog and memory ---------------------------------------------------------------------

    def _browser_processes(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        for pid in self._driver_pids:
            with contextlib.suppress(psutil.Error):
                found.extend(p for p in psutil.Process(pid).children(recursive=True) if _is_chromium(p))
        return found

    def _kill_browser_processes(self) -> None:
        for proc in self._browser_processes():
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def browser_rss_mb(self) -> float:
        """Memory of this process's browser in MB: the proportional set size of all its processes.

        PSS splits shared pages between the processes that map them; a sum of plain RSS would
        count Chromium's shared libraries once per process.
        """
        total = 0
        for proc in self._browser_processes():
            with contextlib.suppress(psutil.Error):
                info = proc.memory_full_info()
                total += getattr(info, "pss", info.rss)
        return total / (1024 * 1024)

    def _after_page(self) -> None:
        self.pages += 1
        self.context_pages += 1
        if self.context_pages >= self.settings.recycle_pages:
            self._drop_context()
        if self.pages % MEMORY_CHECK_EVERY == 1:
            rss = self.browser_rss_mb()
            self.peak_rss_mb = max(self.peak_rss_mb, rss)
            if self._baseline_mb is None:
                self._baseline_mb = rss
            elif rss - self._baseline_mb > self.settings.recycle_mb:
                log.info("browser grew; relaunching", extra={"data": {"rss_mb": round(rss)}})
                self._close_browser()

    # --- the load ---------------------------------------------------------------------------------

    def fetch(self, url: str, *, screenshot: bool = False, timeout: float | None = None) -> PageResult:
        """Load ``url`` and snapshot its DOM; raise FetchError with a kind and a message a user can read."""
        from playwright.sync_api import Error as PlaywrightError
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        limit = float(timeout or self.settings.page_timeout)
        self.guard.check(url)
        self._ready()
        egress = self._context_egress()
        self._state = _PageState(main_frame=self._state.main_frame, egress_mark=egress.mark() if egress else 0)
        self._block_media(not screenshot)
        page = self._page
        started = time.monotonic()
        # The hard stop: a renderer spinning in JavaScript ignores Playwright's timeouts.
        watchdog = threading.Timer(limit + 10, self._kill_browser_processes)
        watchdog.daemon = True
        watchdog.start()
        failed = True
        try:
            response = None
            try:
                response = page.goto(url, wait_until="load", timeout=limit * 1000)
            except PlaywrightTimeout:
                stopped = self._cut_short()
                if stopped is not None:
                    raise stopped from None
                # The DOM may be there while a slow image or a stalled script holds the load event.
                if not self._state.dom_ready:
                    raise FetchError("timeout", f"The page did not load within {limit:g} seconds.") from None
                response = None
            except PlaywrightError as exc:
                raise self._classify(exc) from None
            status = response.status if response is not None else _navigation_status(page)
            # The egress proxy answers a refused plain-HTTP request with a 403 of its own.
            if (stopped := self._cut_short(egress_wait=0.5 if status == 403 else 0.0)) is not None:
                raise stopped
            try:
                snapshot = page.evaluate(SNAPSHOT_JS, IDLE_WAIT_SECONDS * 1000)
                shot = page.screenshot(type="jpeg", quality=60, timeout=5000) if screenshot else None
            except PlaywrightTimeout:
                raise FetchError("timeout", "The page stopped answering while it was read.", transient=True) from None
            except PlaywrightError as exc:
                raise self._classify(exc) from None
            if (stopped := self._cut_short()) is not None:
                raise stopped
            failed = False
            return PageResult(
                url=url,
                final_url=page.url,
                status=status,
                snapshot=snapshot,
                screenshot=shot,
                redirects=list(self._state.documents[:-1]),
                blocked=list(self._state.blocked),
                bytes=self._state.bytes,
                elapsed_ms=int((time.monotonic() - started) * 1000),
                proxy=self._proxy,
            )
        finally:
            watchdog.cancel()
            if failed:
                # A failed load leaves an error page or a half-loaded document behind: start clean.
                self._drop_page()
                if self._browser is not None and not self._browser.is_connected():
                    self._close_browser()
            self._after_page()

    def _cut_short(self, egress_wait: float = 0.0) -> FetchError | None:
        """The error of a load that was stopped on its way (a navigation refused by the request check
        or the egress proxy, too many bytes), or None."""
        if self._state.nav_blocked is not None:
            return FetchError("blocked", self._state.nav_blocked)
        if (refused := self._egress_refused_navigation(egress_wait)) is not None:
            return FetchError("blocked", refused)
        if self._state.too_large:
            return FetchError("too_large", f"The page is larger than {self._mb()} MB.")
        return None

    def _mb(self) -> str:
        return f"{self.settings.max_bytes / (1024 * 1024):g}"

    def _egress_refused_navigation(self, wait: float) -> str | None:
        """Why the egress proxy refused one of this load's page navigations, or None.

        The proxy reports a refusal before it answers, so by the time the browser reports the
        failed navigation the report is on its way; ``wait`` covers the hand-over."""
        egress = self._context_egress()
        if egress is None:
            return None
        for url in self._state.documents:
            try:
                _, host, port = host_port(url)
            except UnsafeUrl:
                continue
            reason = egress.refusal(host, port, since=self._state.egress_mark, wait=wait)
            if reason is not None:
                self._state.blocked.append(url)
                return reason
        return None

    def _classify(self, exc: Exception) -> FetchError:
        text = str(exc)
        tunnel_failed = "ERR_TUNNEL" in text or "ERR_PROXY" in text
        if (stopped := self._cut_short(egress_wait=0.5 if tunnel_failed else 0.0)) is not None:
            return stopped
        if "crash" in text.lower():
            return FetchError("crashed", "The page crashed the browser tab.")
        if self._browser is None or not self._browser.is_connected() or "closed" in text.lower():
            return FetchError("crashed", "The browser stopped while loading the page.", transient=True)
        if tunnel_failed:
            if self.proxy_picker is not None and self._proxy:
                self.proxy_picker.mark_bad(self._proxy)
                self._drop_context()
            return FetchError("network", "The proxy failed.", transient=True)
        for code, message, transient in _NET_ERRORS:
            if code in text:
                return FetchError("network", message, transient=transient)
        if "Download is starting" in text:
            return FetchError("network", "The URL is a file download, not a page.")
        return FetchError("network", "The page could not be loaded.", transient=True)


_NET_ERRORS = (
    ("ERR_NAME_NOT_RESOLVED", "The site's name does not resolve.", False),
    ("ERR_CONNECTION_REFUSED", "The site refused the connection.", True),
    ("ERR_CONNECTION_RESET", "The site reset the connection.", True),
    ("ERR_CONNECTION_CLOSED", "The site closed the connection.", True),
    ("ERR_EMPTY_RESPONSE", "The site sent an empty response.", True),
    ("ERR_TOO_MANY_REDIRECTS", "The page redirects too many times.", False),
    ("ERR_CERT", "The site's TLS certificate is not valid.", False),
    ("ERR_SSL", "The TLS connection failed.", True),
    ("ERR_BLOCKED_BY_RESPONSE", "The page was refused.", False),
    ("ERR_ABORTED", "The load was aborted.", True),
    ("ERR_TIMED_OUT", "The site did not answer in time.", True),
)


def matching_user_agent(user_agent: str, browser_version: str) -> str:
    """``user_agent`` with the browser's own major version (``Chrome/156.0.0.0``, Chrome's reduced form).

    A user agent that names another version than the one the browser reports elsewhere (client
    hints, JavaScript features) marks the visitor as a bot."""
    major = browser_version.split(".")[0]
    return re.sub(r"Chrome/[\d.]+", f"Chrome/{major}.0.0.0", user_agent) if major.isdigit() else user_agent


def _navigation_status(page: Any) -> int:
    """The document's HTTP status from Navigation Timing, when goto gave no response object."""
    try:
        return int(page.evaluate("(performance.getEntriesByType('navigation')[0] || {}).responseStatus || 0"))
    except Exception:  # noqa: BLE001
        return 0


def _header(headers: list[dict[str, str]] | None, name: str) -> str | None:
    for entry in headers or []:
        if entry.get("name", "").lower() == name:
            return entry.get("value")
    return None


def _child_pids() -> set[int]:
    try:
        return {p.pid for p in psutil.Process(os.getpid()).children()}
    except psutil.Error:
        return set()


def _is_chromium(proc: psutil.Process) -> bool:
    try:
        name = proc.name().lower()
    except psutil.Error:
        return False
    return "chrom" in name or "headless_shell" in name


_POOL: BrowserPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool(settings: PoolSettings, proxy_picker: Any = None) -> BrowserPool:
    """Return this process's pool, creating it on first use (a new one when the settings changed)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL.settings != settings:
            if _POOL is not None:
                _POOL.close()
            _POOL = BrowserPool(settings, proxy_picker)
        elif proxy_picker is not None:
            _POOL.proxy_picker = proxy_picker
        return _POOL


def shutdown_pool() -> None:
    """Close this process's browser (tests and worker shutdown)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.close()
        _POOL = None
