"""Send one signed webhook: check the target against SSRF, connect to the checked address, classify.

Every send resolves the endpoint's host again and refuses private, loopback, link-local and
metadata addresses (``morket.core.urlsafety``), then connects to the address it checked (the
host goes in the Host header and, for https, in SNI and the certificate check), so a name cannot
pass the check and then resolve somewhere else. Redirects are never followed: a 3xx is a failed
attempt, since it could point inside the network. http is refused except to a loopback address
when ``WEBHOOK_ALLOW_HTTP_LOOPBACK`` is set outside production (a developer's local receiver).
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from morket.core.urlsafety import IPAddress, UnsafeUrl, check_url, host_port, system_resolver

URL_MAX = 2048
EXCERPT_MAX = 500
MAX_READ_BYTES = 64 * 1024
USER_AGENT = "Morket-Webhooks/1"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: ``ok`` for a 2xx, else the status or the error that stopped it."""

    ok: bool
    status_code: int | None
    latency_ms: int
    excerpt: str
    error: str | None


def check_target(url: str, *, allow_http_loopback: bool) -> list[IPAddress]:
    """Return the addresses ``url`` may be delivered to, or raise UnsafeUrl saying why not."""
    if not isinstance(url, str) or not url.strip():
        raise UnsafeUrl("Enter the URL that receives the events.")
    if len(url) > URL_MAX:
        raise UnsafeUrl(f"The URL is longer than {URL_MAX} characters.")
    parts = urlsplit(url.strip())
    if parts.username or parts.password:
        raise UnsafeUrl("The URL must not contain a user name or password; the signature authenticates Morket.")
    scheme, host, port = host_port(url)
    if scheme == "https":
        return check_url(url)
    if not allow_http_loopback:
        raise UnsafeUrl("Webhook URLs must use https.")
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = [ipaddress.ip_address(a.split("%")[0]) for a in system_resolver(host, port)]
    if not addresses or not all(ip.is_loopback for ip in addresses):
        raise UnsafeUrl("http is allowed only to a loopback address in development; use https.")
    return addresses


def pinned_request(url: str, address: IPAddress) -> tuple[str, dict[str, str], dict[str, str]]:
    """The URL with its host replaced by ``address``, the Host header and the TLS server name."""
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal + (f":{parts.port}" if parts.port else "")
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return target, {"Host": host_header}, extensions


def sanitise(text: str, *secrets: str) -> str:
    """A short, printable excerpt of a receiver's answer with any secret removed."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _CONTROL.sub(" ", text)[:EXCERPT_MAX]


@dataclass(frozen=True)
class Target:
    """Where a run of deliveries goes: the URL pinned to the address the check allowed."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str]


def prepare(url: str, *, allow_http_loopback: bool) -> Target:
    """Check ``url`` (raise UnsafeUrl) and pin it to the first allowed address, for a run of sends.

    A delivery job checks once per batch it takes (the name is resolved again for the next batch):
    every request of the run goes to the address that was checked, never to a fresh resolution."""
    addresses = check_target(url, allow_http_loopback=allow_http_loopback)
    target, pin_headers, extensions = pinned_request(url, addresses[0])
    return Target(target, {**pin_headers, "Content-Type": "application/json", "User-Agent": USER_AGENT}, extensions)


def send(
    client: httpx.Client,
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float,
    allow_http_loopback: bool,
    secrets: tuple[str, ...] = (),
    target: Target | None = None,
) -> Outcome:
    """POST ``body`` to ``url`` once, pinned to the checked address; never follows a redirect.

    ``target``: ``url`` already checked and pinned by ``prepare`` (else it is checked here)."""
    started = time.perf_counter()

    def elapsed() -> int:
        return int((time.perf_counter() - started) * 1000)

    if target is None:
        try:
            target = prepare(url, allow_http_loopback=allow_http_loopback)
        except UnsafeUrl as exc:
            return Outcome(False, None, elapsed(), "", f"refused: {exc.message}"[:300])
    request = client.build_request(
        "POST",
        target.url,
        content=body,
        headers={**headers, **target.headers},
        timeout=timeout,
        extensions=target.extensions,
    )
    try:
        response = client.send(request, stream=True, follow_redirects=False)
    except httpx.TimeoutException:
        return Outcome(False, None, elapsed(), "", f"no answer within {timeout:g}s")
    except httpx.TransportError as exc:
        return Outcome(False, None, elapsed(), "", f"could not connect ({type(exc).__name__})")
    try:
        raw = bytearray()
        for chunk in response.iter_bytes():
            raw += chunk
            if len(raw) >= MAX_READ_BYTES:
                break
    except httpx.HTTPError:
        raw = bytearray()
    finally:
        response.close()
    status = response.status_code
    excerpt = sanitise(bytes(raw[: EXCERPT_MAX * 4]).decode("utf-8", "replace"), *secrets)
    if 200 <= status < 300:
        return Outcome(True, status, elapsed(), excerpt, None)
    if 300 <= status < 400:
        return Outcome(False, status, elapsed(), excerpt, f"redirected (HTTP {status}); redirects are not followed")
    return Outcome(False, status, elapsed(), excerpt, f"HTTP {status}")
