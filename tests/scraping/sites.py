"""Local websites for scraping tests and the benchmark: a threaded HTTP server on loopback.

Every host name under ``.test`` reaches it (Chromium maps them with --host-resolver-rules, the
SSRF check with the same rules); the page a host serves depends on the name, so fifty
companies are fifty host names. Hostile pages: slow, never-ending, 50 MB, crashing, spinning,
redirects into the network, and sub-requests to the metadata address.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HUGE_BYTES = 50 * 1024 * 1024


def company_name(host: str) -> str:
    """``acme-7.test`` → ``Acme 7``: the name a site's pages announce."""
    label = host.split(":")[0].split(".")[0]
    return " ".join(part.capitalize() for part in label.split("-"))


def company_page(host: str) -> str:
    name = company_name(host)
    slug = host.split(":")[0].split(".")[0]
    org = {
        "@context": "https://schema.org",
        "@type": "Organization",
        "name": name,
        "description": f"{name} makes widgets for revenue teams.",
        "telephone": "+1 415 555 0100",
        "address": {
            "@type": "PostalAddress",
            "streetAddress": "1 Market St",
            "addressLocality": "San Francisco",
            "addressCountry": "US",
        },
        "sameAs": [f"https://twitter.com/{slug.replace('-', '_')}"],
    }
    return f"""<!doctype html><html lang="en-US"><head><title>{escape(name)} | Widgets for revenue teams</title>
<meta name="description" content="{escape(name)} makes widgets for revenue teams.">
<meta property="og:site_name" content="{escape(name)}">
<meta name="generator" content="WordPress 6.8">
<link rel="icon" href="/favicon.png">
<script type="application/ld+json">{json.dumps(org)}</script>
<script src="/wp-includes/js/jquery.min.js"></script>
</head><body><header><img class="logo" src="/logo.png" alt="{escape(name)} logo"></header>
<h1>{escape(name)}</h1><p>Contact us at
<a href="mailto:Hello@{escape(host.split(":")[0])}">hello@{escape(host.split(":")[0])}</a>
or call <a href="tel:+14155550100">(415) 555-0100</a>.</p>
<a href="https://www.linkedin.com/company/{slug}/">LinkedIn</a>
<a href="/careers">Careers</a>
<address>1 Market St, San Francisco</address>
<p>Nice <b>&lt;script&gt;alert(1)&lt;/script&gt;</b> text.</p>
</body></html>"""


JS_PAGE = """<!doctype html><html lang="en"><head><title>Loading…</title><script src="/app.js"></script></head>
<body><div id="root"></div></body></html>"""
JS_APP = """fetch('/company.json').then(r => r.json()).then(c => {
  document.title = c.name + ' - Home';
  const m = document.createElement('meta');
  m.name = 'description'; m.content = c.description; document.head.appendChild(m);
  document.getElementById('root').innerHTML = '<h1>' + c.name + '</h1><a href="mailto:' + c.email + '">mail</a>'
    + '<a href="https://github.com/' + c.github + '">GitHub</a>';
  window.React = {};
});"""
TEAM_PAGE = """<!doctype html><html><head><title>Team</title></head><body>
<div class="team-member"><h3>Ada Lovelace</h3><p class="title">Chief Executive Officer</p>
<a href="https://www.linkedin.com/in/ada-lovelace">in</a></div>
<div itemscope itemtype="https://schema.org/Person"><span itemprop="name">Grace Hopper</span>
<span itemprop="jobTitle">VP Engineering</span></div>
<p>Write to <a href="mailto:team@example.org">team@example.org</a></p></body></html>"""
CRASH_PAGE = """<!doctype html><html><head><title>crash</title></head><body><script>
const hog = []; while (true) { hog.push(new Array(1e6).fill(Math.random())); }
</script></body></html>"""
SPIN_PAGE = """<!doctype html><html><head><title>spin</title></head><body><p>spinning</p><script>
setTimeout(() => { while (true) {} }, 0);
</script></body></html>"""
ROBOTS = "User-agent: *\nDisallow: /private\n"


class SiteHandler(BaseHTTPRequestHandler):
    server_version = "LocalSites/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: str | bytes, content_type: str = "text/html; charset=utf-8", **headers) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        sites: LocalSites = self.server.sites  # type: ignore[attr-defined]
        host = self.headers.get("Host", "")
        path = urlsplit(self.path).path
        sites.hits[(host.split(":")[0], path)] += 1
        sites.log.append((host, path))
        sites.times.append((time.monotonic(), host.split(":")[0], path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._route(sites, host, path)

    def _route(self, sites: LocalSites, host: str, path: str) -> None:
        port = self.server.server_port  # type: ignore[attr-defined]
        if (host.split(":")[0], path) in sites.pages:
            content_type, body = sites.pages[(host.split(":")[0], path)]
            return self._send(200, body, content_type)
        if path == "/robots.txt":
            return self._send(200, ROBOTS, "text/plain")
        if path in ("/", "/private", "/careers"):
            return self._send(200, company_page(host))
        if path == "/js":
            return self._send(200, JS_PAGE)
        if path == "/app.js":
            return self._send(200, JS_APP, "application/javascript")
        if path == "/company.json":
            time.sleep(0.2)
            name = company_name(host)
            body = {
                "name": name,
                "description": f"{name} renders in JavaScript.",
                "email": f"sales@{host.split(':')[0]}",
                "github": name.replace(" ", ""),
            }
            return self._send(200, json.dumps(body), "application/json")
        if path == "/team":
            return self._send(200, TEAM_PAGE)
        if path == "/slow":
            time.sleep(1.5)
            return self._send(200, company_page(host))
        if path == "/missing":
            return self._send(404, "<h1>Not found</h1>")
        if path == "/error":
            return self._send(500, "<h1>Server error</h1>")
        if path.startswith("/redirect/"):
            left = int(path.rsplit("/", 1)[1])
            target = "/" if left <= 1 else f"/redirect/{left - 1}"
            return self._send(302, "", Location=target)
        if path == "/to-loopback":
            return self._send(302, "", Location=f"http://127.0.0.1:{port}/")
        if path == "/to-metadata":
            return self._send(302, "", Location="http://169.254.169.254/latest/meta-data/")
        if path == "/to-other-port":
            return self._send(302, "", Location=f"http://{host.split(':')[0]}:{sites.closed_port}/")
        if path == "/sneaky":
            body = company_page(host).replace(
                "</body>",
                '<img src="http://169.254.169.254/latest/meta-data/iam">'
                f'<iframe src="http://127.0.0.1:{port}/"></iframe>'
                f'<script>fetch("http://[::1]:{port}/").catch(() => {{}})</script></body>',
            )
            return self._send(200, body)
        if path == "/reads-rebind":
            # A script from a host whose DNS answer changes after the check (see test_scraper).
            body = company_page(host).replace(
                "</body>", f'<script src="http://rebind.test:{port}/app.js"></script></body>'
            )
            return self._send(200, body)
        if path == "/hang":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<!doctype html><html><head><title>never</title></head><body><p>still loading")
            self.wfile.flush()
            sites.stop.wait(60)
            return None
        if path == "/huge":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"<p>" + b"x" * 65530 + b"</p>"
            sent = 0
            while sent < HUGE_BYTES and not sites.stop.is_set():
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
            return None
        if path == "/huge-declared":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(HUGE_BYTES))
            self.end_headers()
            self.wfile.write(b"<html><body>" + b"y" * 1024)
            return None
        if path == "/crash":
            return self._send(200, CRASH_PAGE)
        if path == "/spin":
            return self._send(200, SPIN_PAGE)
        if path in ("/logo.png", "/favicon.png", "/wp-includes/js/jquery.min.js"):
            return self._send(
                200,
                b"" if path.endswith("png") else "window.jQuery = function () {};",
                "application/javascript" if path.endswith("js") else "image/png",
            )
        return self._send(404, "<h1>Not found</h1>")


class LocalSites:
    """The server and what it saw: request counts per (host, path)."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
        self.server.daemon_threads = True
        self.server.sites = self  # type: ignore[attr-defined]
        self.port = self.server.server_port
        self.hits: Counter = Counter()
        self.log: list[tuple[str, str]] = []
        self.times: list[tuple[float, str, str]] = []
        self.pages: dict[tuple[str, str], tuple[str, str]] = {}  # (host, path) → (type, body), per test
        self.stop = threading.Event()
        self.closed_port = _closed_port()
        self.thread = threading.Thread(target=self.server.serve_forever, name="local-sites", daemon=True)

    def start(self) -> LocalSites:
        self.thread.start()
        return self

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, host: str = "acme.test", path: str = "/") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def host_rules(self) -> str:
        return "MAP *.test 127.0.0.1"

    @property
    def allowlist(self) -> list[str]:
        return [f"*.test:{self.port}"]

    def serve(self, host: str, path: str, body: str, content_type: str = "text/html; charset=utf-8") -> str:
        """Answer ``path`` on ``host`` with ``body`` until the next reset; return its URL."""
        self.pages[(host, path)] = (content_type, body)
        return self.url(host, path)

    def reset(self) -> None:
        self.pages.clear()
        self.hits.clear()
        self.log.clear()
        self.times.clear()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
