"""The scrape browser's egress boundary: hostile pages on an allowlisted loopback site try every way
a browser has to open a connection to a second loopback server that is not allowlisted.

The second server is the independent record: it notes every TCP connection it accepts and every
UDP datagram it receives on its port (not only HTTP requests), and answers a secret that a page
would copy into its title. Every test asserts it saw nothing.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

SECRET = "internal-secret-7f3a"


class Recorder:
    """The refused server: a TCP listener and a UDP socket on one loopback port, recording everything."""

    def __init__(self) -> None:
        while True:
            self.tcp = socket.socket()
            self.tcp.bind(("127.0.0.1", 0))
            self.port = self.tcp.getsockname()[1]
            self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                self.udp.bind(("127.0.0.1", self.port))
                break
            except OSError:
                self.tcp.close()
                self.udp.close()
        self.tcp.listen(64)
        self.udp.settimeout(0.2)
        self.connections: list[tuple[str, int]] = []
        self.datagrams: list[bytes] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._receive, daemon=True).start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, addr = self.tcp.accept()
            except OSError:
                return
            self.connections.append(addr[:2])
            with contextlib.suppress(OSError), conn:
                conn.settimeout(1)
                with contextlib.suppress(OSError):
                    conn.recv(4096)
                body = SECRET.encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nAccess-Control-Allow-Origin: *\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )

    def _receive(self) -> None:
        while not self.stop.is_set():
            try:
                data, _ = self.udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.datagrams.append(data)

    def seen(self) -> list:
        return [*self.connections, *self.datagrams]

    def close(self) -> None:
        self.stop.set()
        self.tcp.close()
        self.udp.close()


def hostile_pages(r: int) -> dict[str, tuple[str, str]]:
    """Path -> (content type, body) of the hostile site; ``r`` is the refused server's port."""
    target = f"http://127.0.0.1:{r}"
    named = f"http://refused.test:{r}"
    html = "text/html; charset=utf-8"
    js = "application/javascript"
    worker = (
        f"fetch('{target}/worker').then(r => r.text())"
        ".then(t => postMessage('fetch:' + t), () => postMessage('fetch:no'));"
        f"try {{ const ws = new WebSocket('ws://127.0.0.1:{r}/worker');"
        " ws.onopen = () => postMessage('ws:open'); ws.onerror = () => postMessage('ws:no'); }"
        " catch (e) { postMessage('ws:none'); }"
    )
    # An iframe's window still has what the init script removed from the top window, if it can.
    fresh_window = (
        "const f = document.createElement('iframe'); document.body.appendChild(f); const fw = f.contentWindow;"
    )
    return {
        "/robots.txt": ("text/plain", ""),
        "/delay.js": (js, ""),  # served after 1.5 s: holds the load event while the tricks run
        "/shared": (
            html,
            "<!doctype html><html><head><title>shared</title></head><body><script>"
            "const w = new SharedWorker('/shared.js');"
            "w.port.onmessage = (e) => { document.title = 'shared ' + e.data; }; w.port.start();"
            '</script><script src="/delay.js"></script></body></html>',
        ),
        "/shared.js": (
            js,
            "onconnect = (e) => { const port = e.ports[0]; const say = (t) => port.postMessage(t);"
            f" fetch('{target}/shared').then(r => r.text()).then(say, () => say('no'));"
            f" fetch('{named}/shared').then(r => r.text()).then(say, () => say('no')); }};",
        ),
        "/workers": (
            html,
            "<!doctype html><html><head><title>workers</title></head><body><script>"
            "const report = (e) => { document.title += ' ' + e.data; };"
            "new Worker('/worker.js').onmessage = report;"
            f"new Worker(URL.createObjectURL(new Blob([{worker!r}], {{type: 'text/javascript'}}))).onmessage = report;"
            '</script><script src="/delay.js"></script></body></html>',
        ),
        "/worker.js": (js, worker),
        "/service-worker": (
            html,
            "<!doctype html><html><head><title>sw</title></head><body><script>"
            "if (navigator.serviceWorker) navigator.serviceWorker.register('/sw.js')"
            ".then(() => { document.title = 'registered'; }, () => { document.title = 'refused'; });"
            '</script><script src="/delay.js"></script></body></html>',
        ),
        "/sw.js": (
            js,
            f"fetch('{target}/sw-top');"
            f"self.addEventListener('install', (e) => e.waitUntil(fetch('{target}/sw-install')));",
        ),
        "/websocket": (
            html,
            "<!doctype html><html><head><title>ws</title></head><body><script>"
            f"{fresh_window} const WS = window.WebSocket || fw.WebSocket;"
            f"for (const u of ['ws://127.0.0.1:{r}/page', 'ws://refused.test:{r}/page'])"
            " { try { const s = new WS(u); s.onopen = () => { document.title = 'open'; }; } catch (e) {} }"
            '</script><script src="/delay.js"></script></body></html>',
        ),
        "/preconnect": (
            html,
            "<!doctype html><html><head><title>pre</title>"
            f'<link rel="preconnect" href="{target}"><link rel="preconnect" href="https://127.0.0.1:{r}">'
            f'<link rel="preconnect" href="{named}"><link rel="dns-prefetch" href="//refused.test:{r}">'
            f'<link rel="dns-prefetch" href="//127.0.0.1:{r}">'
            f'</head><body><iframe src="{target}/frame"></iframe><iframe src="{named}/frame"></iframe>'
            '<script src="/delay.js"></script></body></html>',
        ),
        "/webrtc": (
            html,
            "<!doctype html><html><head><title>rtc</title></head><body><script>"
            f"{fresh_window} const PC = window.RTCPeerConnection || fw.RTCPeerConnection;"
            "if (PC) { const pc = new PC({iceServers: ["
            f"{{urls: 'stun:127.0.0.1:{r}'}},"
            f"{{urls: ['turn:127.0.0.1:{r}?transport=udp', 'turn:127.0.0.1:{r}?transport=tcp'],"
            " username: 'u', credential: 'p'}]});"
            "pc.createDataChannel('x'); pc.createOffer().then((o) => pc.setLocalDescription(o));"
            "document.title = 'rtc ' + typeof PC; }"
            '</script><script src="/delay.js"></script></body></html>',
        ),
        "/navigate": (
            html,
            f"<!doctype html><html><head><title>nav</title><script>location.href = '{target}/nav';</script>"
            "</head><body><p>moving on</p></body></html>",
        ),
        "/navigate-later": (
            html,
            "<!doctype html><html><head><title>nav</title></head><body><p>moving on</p><script>"
            f"setTimeout(() => {{ location.assign('{named}/nav'); }}, 200);"
            '</script><script src="/delay.js"></script></body></html>',
        ),
        "/popup": (
            html,
            "<!doctype html><html><head><title>popup</title></head><body><script>"
            f"window.open('{target}/popup'); window.open('{named}/popup');"
            '</script><script src="/delay.js"></script></body></html>',
        ),
        "/agent": (
            html,
            "<!doctype html><html><head><title>agent</title></head><body><script>"
            "document.title = navigator.userAgent;</script></body></html>",
        ),
    }


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        site: HostileSite = self.server.site  # type: ignore[attr-defined]
        path = urlsplit(self.path).path
        if path != "/robots.txt":  # robots.txt is read by Morket's own client, as MorketBot
            site.agents.append(self.headers.get("User-Agent", ""))
        if path == "/delay.js":
            time.sleep(1.5)
        content_type, body = site.pages.get(path, ("text/html", "<h1>Not found</h1>"))
        data = body.encode()
        self.send_response(200 if path in site.pages else 404)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        with contextlib.suppress(OSError):
            self.wfile.write(data)


class HostileSite:
    """The allowlisted site (every ``*.test`` name on its port) serving the pages above."""

    def __init__(self, refused_port: int) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
        self.server.daemon_threads = True
        self.server.site = self  # type: ignore[attr-defined]
        self.port = self.server.server_port
        self.pages = hostile_pages(refused_port)
        self.agents: list[str] = []
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def refused():
    """The second loopback server, which no allowlist names."""
    recorder = Recorder()
    yield recorder
    recorder.close()


@pytest.fixture(scope="module")
def hostile(refused, sites):
    site = HostileSite(refused.port)
    yield site
    site.close()


@pytest.fixture
def egress_scraper(app, db, scrape_settings, sites, hostile, refused, monkeypatch):
    """A scraper whose allowlist names the local sites and the hostile site (host pattern AND port)."""
    from morket.scraping.service import scraper as make

    monkeypatch.setitem(scrape_settings, "SCRAPE_ALLOWLIST", [*sites.allowlist, f"*.test:{hostile.port}"])
    refused.connections.clear()
    refused.datagrams.clear()
    sites.reset()
    return make()


def _settle() -> None:
    """Give a late connection (a worker or a popup still starting) the time to arrive."""
    time.sleep(1.0)


@pytest.mark.parametrize(
    ("path", "leak"),
    [
        ("/shared", "SharedWorker fetch"),
        ("/workers", "dedicated and blob Worker fetch and WebSocket"),
        ("/service-worker", "service worker registration"),
        ("/websocket", "WebSocket from the page"),
        ("/preconnect", "preconnect, dns-prefetch and iframes"),
        ("/webrtc", "WebRTC STUN and TURN"),
        ("/popup", "window.open"),
    ],
)
def test_nothing_a_page_runs_reaches_a_refused_address(egress_scraper, hostile, refused, path, leak):
    outcome = egress_scraper.scrape(hostile.url(f"h{path.strip('/')}.test", path), "generic")
    _settle()
    assert refused.seen() == [], f"{leak} reached the refused server"
    assert SECRET not in str(outcome.data)
    assert outcome.ok, outcome.message  # the page itself is allowed; only its reach inside is refused


@pytest.mark.parametrize("path", ["/navigate", "/navigate-later"])
def test_a_script_navigation_to_a_refused_address_ends_blocked(egress_scraper, hostile, refused, path):
    outcome = egress_scraper.scrape(hostile.url("mover.test", path), "generic")
    _settle()
    assert (outcome.ok, outcome.error_kind) == (False, "blocked"), outcome
    assert "loopback" in outcome.message
    assert outcome.final_url is None and outcome.data == {}
    assert refused.seen() == []


def _rebinding(app, monkeypatch, sites, host: str):
    """A scraper whose request check resolves ``host`` to a public address while the egress proxy
    resolves it, as it really does, to the local site (the two answers of a rebinding DNS server);
    only reader.test is allowlisted."""
    from morket.scraping.service import scraper as make

    settings = app.config["MORKET"]
    monkeypatch.setitem(settings, "SCRAPE_ALLOWLIST", [f"reader.test:{sites.port}"])
    monkeypatch.setitem(settings, "SCRAPE_RESPECT_ROBOTS", False)
    scraper = make()
    guard = scraper.pool.guard
    resolve = guard.rules.resolve
    monkeypatch.setattr(guard.rules, "resolve", lambda h, p: ["93.184.216.34"] if h == host else resolve(h, p))
    guard._decisions.clear()  # decisions cached by earlier tests
    sites.reset()
    return scraper


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_navigation_the_egress_proxy_refuses_ends_blocked(app, db, scrape_settings, sites, monkeypatch, scheme):
    # The request check lets the page through (it was told a public address); the proxy resolves
    # the name itself, finds loopback, and refuses the connection (CONNECT for https).
    scraper = _rebinding(app, monkeypatch, sites, "rebind.test")
    outcome = scraper.scrape(f"{scheme}://rebind.test:{sites.port}/", "company")
    assert (outcome.ok, outcome.error_kind) == (False, "blocked"), outcome
    assert "127.0.0.1 (loopback)" in outcome.message
    assert outcome.data == {} and outcome.screenshot is None
    assert [h for h, _ in sites.log if h.startswith("rebind.test")] == []


def test_a_sub_request_to_a_rebinding_host_never_connects(app, db, scrape_settings, sites, monkeypatch):
    # The page is allowlisted; its script comes from a host whose address changes after the check.
    scraper = _rebinding(app, monkeypatch, sites, "rebind.test")
    outcome = scraper.scrape(sites.url("reader.test", "/reads-rebind"), "generic")
    assert outcome.ok, outcome.message
    assert outcome.data["title"] == "Reader | Widgets for revenue teams"  # the script never ran
    assert [h for h, _ in sites.log if h.startswith("rebind.test")] == []


def test_the_user_agent_names_the_browser_s_own_version(egress_scraper, hostile):
    outcome = egress_scraper.scrape(hostile.url("agent.test", "/agent"), "generic")
    assert outcome.ok, outcome.message
    major = egress_scraper.pool._browser.version.split(".")[0]
    assert f"Chrome/{major}.0.0.0 " in outcome.data["title"]  # what scripts read
    assert hostile.agents and all(f"Chrome/{major}.0.0.0 " in agent for agent in hostile.agents)  # what is sent


def test_the_egress_proxy_stops_with_the_pool(egress_scraper, hostile):
    from morket.scraping.browser import shutdown_pool

    assert egress_scraper.scrape(hostile.url("up.test", "/agent"), "generic").ok
    egress = egress_scraper.pool._egress
    port = egress.port
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # listening while the browser uses it
    shutdown_pool()
    assert not egress.alive()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
