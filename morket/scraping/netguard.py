"""The checks every browser request goes through before it leaves: scheme, resolved address, allowlist.

``HostRules`` parses Chromium-style host resolver rules ("MAP *.test 127.0.0.1") so that the
request check and the egress proxy resolve names as a deployment (or the test suite) maps them;
names no rule covers go to the system resolver. ``RequestGuard`` caches each host:port decision
for a few seconds: a page asks for the same hosts dozens of times, and a short cache keeps the
window in which a rebinding DNS answer could slip through no wider than that.

The same guard is the policy of the browser's egress proxy (``morket.scraping.egress``): there
``RequestGuard.addresses`` resolves a destination once and the proxy connects to the address it
returned, so a DNS answer that changes between the check and the connection (rebinding) changes
nothing. The request check in the browser is the second layer in front of it.
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from morket.core.urlsafety import (
    IPAddress,
    UnsafeUrl,
    check_url,
    host_port,
    parse_allowlist,
    system_resolver,
)

# Schemes that never reach the network; everything else must be http(s) and pass the check.
LOCAL_SCHEMES = frozenset({"data", "blob", "about"})
DECISION_TTL = 5.0


class HostRules:
    """Chromium-style ``MAP pattern address`` rules, used for both the browser and the guard."""

    def __init__(self, rules: str = "") -> None:
        self.text = rules.strip()
        self.maps: list[tuple[str, str]] = []
        for rule in self.text.split(","):
            words = rule.split()
            if len(words) == 3 and words[0].upper() == "MAP":
                self.maps.append((words[1].lower(), words[2]))

    def resolve(self, host: str, port: int) -> list[str]:
        """Resolve ``host`` through the rules first, then the system."""
        for pattern, address in self.maps:
            if fnmatch.fnmatchcase(host, pattern):
                return [address.strip("[]")]
        return system_resolver(host, port)


@dataclass
class RequestGuard:
    """Decide, per request URL, whether the browser may send it; remember what it refused."""

    allowlist: frozenset[tuple[str, int]]
    rules: HostRules
    _decisions: dict[tuple[str, str, int], tuple[float, str | None]] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, allowlist: list[str] | tuple[str, ...], host_rules: str = "") -> RequestGuard:
        return cls(parse_allowlist(allowlist), HostRules(host_rules))

    def refusal(self, url: str) -> str | None:
        """Return why ``url`` may not be requested, or None when it may."""
        scheme = urlsplit(url).scheme.lower()
        if scheme in LOCAL_SCHEMES:
            return None
        try:
            key = host_port(url)
        except UnsafeUrl as exc:
            return exc.message
        now = time.monotonic()
        cached = self._decisions.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            check_url(url, allowlist=self.allowlist, resolver=self.rules.resolve)
            reason = None
        except UnsafeUrl as exc:
            reason = exc.message
        if len(self._decisions) > 4096:
            self._decisions.clear()
        self._decisions[key] = (now + DECISION_TTL, reason)
        return reason

    def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` once and return the addresses a connection to host:port may go to.

        Raise UnsafeUrl when any address is refused or the name does not resolve. The egress proxy
        connects to the first address returned, so what was checked is what is reached."""
        netloc = f"[{host}]" if ":" in host else host
        found = check_url(f"http://{netloc}:{port}/", allowlist=self.allowlist, resolver=self.rules.resolve)
        if not found:
            raise UnsafeUrl(f"The host {host} could not be resolved.")
        return found

    def check(self, url: str) -> None:
        """Raise UnsafeUrl when ``url`` may not be requested."""
        reason = self.refusal(url)
        if reason is not None:
            raise UnsafeUrl(reason)
