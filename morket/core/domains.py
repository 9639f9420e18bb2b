"""The one domain normaliser: what a user typed or a page linked to → the registrable domain.

Providers send it as the company domain and scraping keys its per-domain limits on it, so both
give the same answer for the same site. The public suffix list is tldextract's bundled copy
(never fetched): ``www.shop.acme.co.uk`` → ``acme.co.uk``. Its private section counts, as
browsers count it for cookies: ``acme.github.io`` belongs to Acme, not to GitHub. A suffix the
list does not know (``.test``, ``.internal``) keeps the last two labels. Internationalised names
come back as ASCII (``bücher.de`` → ``xn--bcher-kva.de``), so either spelling is one domain; an
IP address comes back as itself. One word with a slash typed without a scheme (``n/a``) is no domain.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

import idna
import tldextract

_EXTRACT = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, include_psl_private_domains=True)
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def registrable_domain(value: Any) -> str | None:
    """The registrable domain of a URL, host, ``host:port`` or email address; None when it has none.

    ``https://www.ACME.co.uk/path`` → ``acme.co.uk``; ``user@acme.com`` → ``acme.com``;
    ``acme.com.`` → ``acme.com``; ``[2001:DB8::1]:443`` → ``2001:db8::1``.
    """
    host = _host(value)
    if host is None:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not host.isascii():
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError:
            return None
    labels = host.split(".")
    if len(labels) == 1 and _slashed_words(value):
        return None  # "n/a", "yes/no": words typed in a cell, not a host with a path
    if len(host) > 253 or not all(_LABEL.match(label) for label in labels):
        return None
    parts = _EXTRACT(host)
    if parts.top_domain_under_public_suffix:
        return parts.top_domain_under_public_suffix
    if parts.suffix:
        return host  # a public suffix itself (``co.uk``): there is nothing above it to register
    return ".".join(labels[-2:])  # a suffix the list does not know (``.test``), or one label


def _slashed_words(value: str) -> bool:
    """Whether ``value`` was typed without a scheme and has a slash after its first word."""
    raw = value.strip()
    return not _SCHEME.match(raw) and not raw.lower().startswith("mailto:") and "/" in raw.lstrip("/")


def _host(value: Any) -> str | None:
    """The host name (or address) in ``value``, lower case without a trailing dot."""
    if not isinstance(value, str):
        return None
    raw = value.strip()
    if not raw or any(ch.isspace() for ch in raw):
        return None
    try:
        return str(ipaddress.ip_address(raw.strip("[]")))  # a bare IPv6 address has colons of its own
    except ValueError:
        pass
    if raw.lower().startswith("mailto:"):
        raw = raw[7:].split("?", 1)[0]
    if not _SCHEME.match(raw):
        if "@" in raw.split("/", 1)[0]:
            raw = raw.split("/", 1)[0].rsplit("@", 1)[1]  # an email address
        raw = "//" + raw.lstrip("/")
    try:
        host = urlsplit(raw).hostname
    except ValueError:
        return None
    host = (host or "").rstrip(".").lower()
    return host or None
