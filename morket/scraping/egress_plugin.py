"""The egress proxy's policy, as a proxy.py plugin: resolve once, check, connect to what was checked.

Loaded only inside the egress proxy process (``morket.scraping.egress`` starts it). For every
connection the browser asks for — a plain HTTP request or a CONNECT tunnel (https, wss) — the
plugin resolves the destination itself with the same rules and allowlist as the request guard
(``RequestGuard.addresses``), refuses it when any address is private, loopback, link-local,
metadata or unspecified, and otherwise hands proxy.py the checked address through
``resolve_dns``, so the socket goes to the very address that was checked (no second lookup for
a rebinding DNS server to answer differently). Every refusal is reported on a pipe to the
process that started the proxy, so a refused page navigation ends as ``blocked``.

Through an upstream proxy (``--proxy-pool``, from SCRAPE_PROXIES) a tunnel is requested for the
checked address; a plain HTTP request keeps its host name, so there the upstream resolves it
again (checked, not pinned).

A plain HTTP connection is checked for one host: the request goes upstream with
``Connection: close`` so the browser does not reuse it, and a later request on it for another
host:port is refused (proxy.py would otherwise send it to the first host's server). Responses are
relayed as bytes, unparsed.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from proxy.common.flag import flags
from proxy.common.utils import text_
from proxy.http.exception import HttpRequestRejected
from proxy.http.parser import HttpParser
from proxy.http.proxy import HttpProxyBasePlugin

from morket.core.urlsafety import UnsafeUrl
from morket.scraping.netguard import RequestGuard

flags.add_argument("--morket-allowlist", type=str, default="", help="host:port pairs, comma separated")
flags.add_argument("--morket-host-rules", type=str, default="", help="Chromium-style MAP rules")
flags.add_argument("--morket-report-fd", type=int, default=-1, help="pipe that receives one JSON line per refusal")

REFUSED_HEADER = b"X-Morket-Egress"
_GUARDS: dict[tuple[str, str], RequestGuard] = {}


def _guard(allowlist: str, host_rules: str) -> RequestGuard:
    key = (allowlist, host_rules)
    guard = _GUARDS.get(key)
    if guard is None:
        guard = _GUARDS[key] = RequestGuard.from_settings(
            tuple(e for e in allowlist.split(",") if e.strip()), host_rules
        )
    return guard


def report(fd: int, message: dict[str, Any]) -> None:
    """Write one JSON line to the report pipe (one write, well under PIPE_BUF, so lines never interleave)."""
    if fd < 0:
        return
    line = (json.dumps(message) + "\n").encode()[:4000]
    # The process that started the proxy may be gone; the refusal itself still stands.
    with contextlib.suppress(OSError):
        os.write(fd, line)


class EgressPlugin(HttpProxyBasePlugin):
    """Refuse connections into the network; pin the allowed ones to the address that was checked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._target: tuple[str, int] | None = None
        self._address: str | None = None

    def _refuse(self, host: str, port: int, reason: str) -> HttpRequestRejected:
        report(self.flags.morket_report_fd, {"refused": [host, port], "reason": reason})
        return HttpRequestRejected(
            status_code=403,
            reason=b"Forbidden",
            headers={REFUSED_HEADER: b"refused", b"Content-Type": b"text/plain; charset=utf-8"},
            body=reason.encode(),
        )

    def before_upstream_connection(self, request: HttpParser) -> HttpParser | None:
        host, port = text_(request.host or b"").strip("[]").lower(), int(request.port or 0)
        guard = _guard(self.flags.morket_allowlist, self.flags.morket_host_rules)
        try:
            addresses = guard.addresses(host, port)
        except UnsafeUrl as exc:
            raise self._refuse(host, port, exc.message) from None
        self._target, self._address = (host, port), str(addresses[0])
        if request.is_https_tunnel and getattr(self.flags, "proxy_pool", None):
            # Through an upstream proxy (SCRAPE_PROXIES) the tunnel is asked for the checked address,
            # so the upstream does not resolve the name again. A plain HTTP request keeps its name: a
            # proxy must take the Host header from the request line, and sites are virtual hosts.
            request.host = (f"[{self._address}]" if ":" in self._address else self._address).encode()
            self._target = (self._address, port)
        return request

    def resolve_dns(self, host: str, port: int) -> tuple[str | None, Any]:
        # proxy.py resolves the name itself when this returns None: never let it.
        if self._target != (host.strip("[]").lower(), port) or self._address is None:
            raise self._refuse(host, port, "The connection was not checked.")
        return self._address, None

    def handle_client_request(self, request: HttpParser) -> HttpParser | None:
        host, port = text_(request.host or b"").strip("[]").lower(), int(request.port or 0)
        if (host, port) != self._target:
            # A reused plain HTTP connection asked for another host: close it (the browser retries
            # on a new connection, which is checked for that host).
            raise HttpRequestRejected()
        if not request.is_https_tunnel and not request.is_connection_upgrade:
            request.del_header(b"connection")
            request.del_header(b"keep-alive")
            request.add_header(b"Connection", b"close")
        return request

    def handle_upstream_chunk(self, chunk: memoryview) -> memoryview | None:
        # Relay the bytes as they are. proxy.py would otherwise parse a plain HTTP response for its
        # access log, which for a large chunked body costs seconds per megabyte.
        self.client.queue(chunk)
        return None
