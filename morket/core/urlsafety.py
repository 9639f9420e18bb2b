"""SSRF guard: decide whether a URL given by a user (or found on a page) may be fetched.

A URL passes when its scheme is http or https and every address its host resolves to (IPv4 and
IPv6) is a public unicast address: no private, loopback, link-local (which covers the cloud
metadata service at 169.254.169.254), carrier-grade NAT, unique-local (fd00:ec2::254), multicast,
reserved or unspecified address, and no IPv4 address wrapped in IPv6 (mapped, 6to4, Teredo,
NAT64) that would be one. A host and port named in the allowlist ("host:port") pass without these
checks ("*.name:port" names every subdomain on that port); naming both means a redirect
to another port on the same machine is still refused.

What remains: a name can resolve to a public address here and to a private one a moment later
when the client connects (DNS rebinding). Callers that connect themselves (the robots.txt
fetch, the HTTP provider) connect to the address returned here; the browser resolves again, so
for browser traffic the guard is that every request is checked at the moment it leaves, with a
resolver cache shorter than any useful rebinding window. See docs/ARCHITECTURE.md (Scraping).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from morket.core.errors import ValidationFailed

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

# Networks refused even though ``ipaddress`` calls some of them global.
_EXTRA_BLOCKED = tuple(
    ipaddress.ip_network(n)
    for n in (
        "100.64.0.0/10",  # carrier-grade NAT (Alibaba's metadata at 100.100.100.200)
        "192.0.0.0/24",  # IETF protocol assignments
        "198.18.0.0/15",  # benchmarking
        "64:ff9b::/96",  # NAT64: wraps an IPv4 address
        "64:ff9b:1::/48",
    )
)
_AWS_IMDS_V6 = ipaddress.ip_network("fd00:ec2::/32")


class UnsafeUrl(ValidationFailed):
    """The URL may not be fetched: a bad scheme, no host, or an address inside the network."""

    code = "unsafe_url"


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` to every IPv4 and IPv6 address the system knows for it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"The host {host} could not be resolved.") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Say why ``ip`` is off limits ("loopback", "private", ...), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return "link-local"
        inner = _embedded_ipv4(ip)
        if inner is not None:
            reason = blocked_reason(inner)
            return reason or ("an IPv4 address wrapped in IPv6" if ip.ipv4_mapped is None else None)
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local, cloud metadata" if str(ip) == "169.254.169.254" else "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.version == 6 and ip in _AWS_IMDS_V6:
        return "cloud metadata"
    if any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version):
        return "internal"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "private"
    return None


def host_port(url: str) -> tuple[str, str, int]:
    """Return (scheme, host, port) of ``url``, or raise UnsafeUrl for a URL that cannot be fetched."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("The URL is not valid.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrl("Only http and https URLs can be fetched.")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl("The URL has no host.")
    return scheme, host, port or DEFAULT_PORTS[scheme]


def parse_allowlist(entries: Iterable[str]) -> frozenset[tuple[str, int]]:
    """Turn "host:port" settings into a set; an entry without a port is ignored (host AND port)."""
    allowed: set[tuple[str, int]] = set()
    for entry in entries:
        host, sep, port = entry.strip().lower().rpartition(":")
        if sep and host and port.isdigit():
            allowed.add((host.strip("[]"), int(port)))
    return frozenset(allowed)


def allowlisted(host: str, port: int, allowed: frozenset[tuple[str, int]]) -> bool:
    """Whether host:port is named in the allowlist ("*.example.test:8080" names its subdomains)."""
    if (host, port) in allowed:
        return True
    return any(h.startswith("*.") and host.endswith(h[1:]) and p == port for h, p in allowed)


def check_url(
    url: str, *, allowlist: Iterable[str] | frozenset[tuple[str, int]] = (), resolver: Resolver | None = None
) -> list[IPAddress]:
    """Return the addresses ``url`` may be fetched from, or raise UnsafeUrl with a clear message.

    An allowlisted host:port returns the addresses ``resolver`` gives (none when it cannot
    resolve the name: the caller's own resolver, such as the browser's, decides).
    """
    scheme, host, port = host_port(url)
    allowed = allowlist if isinstance(allowlist, frozenset) else parse_allowlist(allowlist)
    resolve = resolver or system_resolver
    if allowlisted(host, port, allowed):
        try:
            return [ipaddress.ip_address(a.split("%")[0]) for a in resolve(host, port)]
        except UnsafeUrl:
            return []
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    addresses = [literal] if literal is not None else [ipaddress.ip_address(a) for a in resolve(host, port)]
    if not addresses:
        raise UnsafeUrl(f"The host {host} could not be resolved.")
    for ip in addresses:
        reason = blocked_reason(ip)
        if reason is not None:
            raise UnsafeUrl(
                f"{host} resolves to {ip} ({reason}); Morket does not fetch addresses inside private networks."
            )
    return addresses
