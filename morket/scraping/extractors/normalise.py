"""Normalisers for what pages say: URLs, emails, phone numbers, social profiles, and plain text.

Text goes through nh3 with no tags allowed, so markup in a scraped value can never render.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

import nh3
import phonenumbers

EMAIL_RE = re.compile(
    r"(?<![\w.+-])[a-z0-9][a-z0-9._%+-]{0,63}@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,24}(?![\w-])", re.I
)
# A scheme, unless what follows the colon is a port (``acme.com:8080``).
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):(?!\d)", re.I)
# What a browser removes from a URL before reading it (WHATWG URL): ``java\tscript:`` is ``javascript:``.
_URL_NOISE = re.compile(r"[\t\n\r]")
_URL_EDGES = "".join(chr(c) for c in range(0x21))
# Characters a URL may carry as they are (RFC 3986 reserved and unreserved, and ``%`` so escapes
# stay escapes); quotes, angle brackets and spaces are percent-encoded.
_URL_SAFE = "/?#[]@!$&'()*+,;=-._~:%"
_IMAGE_SUFFIX = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")
_PLACEHOLDER_EMAILS = {"example.com", "domain.com", "email.com", "yourdomain.com", "sentry.io", "wixpress.com"}

# network → (host suffixes, path pattern giving the handle, canonical URL format)
SOCIAL = {
    "linkedin": (
        ("linkedin.com",),
        re.compile(r"^/(company|in|school|showcase)/([^/?#]+)"),
        "https://www.linkedin.com/{0}/{1}",
    ),
    "twitter": (
        ("twitter.com", "x.com"),
        re.compile(r"^/(?!intent|share|home|search|hashtag)([A-Za-z0-9_]{1,15})/?$"),
        "https://x.com/{0}",
    ),
    "facebook": (
        ("facebook.com", "fb.com"),
        re.compile(r"^/(?!sharer|share|dialog|plugins)([A-Za-z0-9.\-]{2,})/?$"),
        "https://www.facebook.com/{0}",
    ),
    "instagram": (
        ("instagram.com",),
        re.compile(r"^/(?!p/|explore)([A-Za-z0-9_.]{1,30})/?$"),
        "https://www.instagram.com/{0}",
    ),
    "github": (
        ("github.com",),
        re.compile(r"^/(?!features|about|pricing|login)([A-Za-z0-9-]{1,39})/?$"),
        "https://github.com/{0}",
    ),
    "youtube": (
        ("youtube.com",),
        re.compile(r"^/(@[A-Za-z0-9_.\-]+|c/[^/]+|channel/[^/]+|user/[^/]+)/?$"),
        "https://www.youtube.com/{0}",
    ),
}


def clean_text(value: object, limit: int = 2000) -> str:
    """Return ``value`` as plain text: markup stripped (nh3), whitespace collapsed, clipped."""
    if value is None:
        return ""
    text = nh3.clean(str(value), tags=set(), attributes={}, strip_comments=True)
    text = (
        text.replace("&amp;", "&")
        .replace("&lt;", "‹")
        .replace("&gt;", "›")
        .replace("&quot;", '"')
        .replace("&#39;", "'")
    )
    return " ".join(text.split())[:limit]


def normalise_url(url: str, base_scheme: str = "https") -> str | None:
    """Return an absolute http(s) URL with a lowercase host and no fragment, or None."""
    url = (url or "").strip()
    if not url:
        return None
    scheme = _SCHEME.match(url)
    if scheme is not None and scheme.group(1).lower() not in ("http", "https"):
        return None  # mailto:, tel:, javascript: ...
    if "://" not in url:
        url = f"{base_scheme}://{url.lstrip('/')}"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    path = quote(parts.path or "/", safe=_URL_SAFE)
    return urlunsplit((parts.scheme.lower(), netloc, path, quote(parts.query, safe=_URL_SAFE), ""))


def page_url(value: object, base: str) -> str | None:
    """Return a URL found on the page at ``base`` as an absolute http(s) URL, or None.

    Relative references resolve against the page (``/img/logo.png``, ``//cdn.acme.com/x``);
    any other scheme (``javascript:``, ``data:``, ``mailto:``) gives None.
    """
    if not isinstance(value, str):
        return None
    value = _URL_NOISE.sub("", value).strip(_URL_EDGES)
    if not value:
        return None
    try:
        absolute = urljoin(base, value) if base else value
    except ValueError:
        return None
    if not absolute.lower().startswith(("http://", "https://")):
        return None
    return normalise_url(absolute)


def clip_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, never inside a word."""
    if len(text) <= limit:
        return text
    head = text[:limit]
    if not text[limit].isspace() and " " in head:
        head = head.rsplit(None, 1)[0]  # the limit falls inside a word: leave that word out
    return head.rstrip(" ,;:-–—")


def normalise_email(value: str) -> str | None:
    """Return a lowercase address that looks deliverable, or None (images and placeholders are not)."""
    value = unquote(value or "").strip().lower()
    if value.startswith("mailto:"):
        value = value[7:].split("?")[0]
    match = EMAIL_RE.fullmatch(value)
    if match is None or value.endswith(_IMAGE_SUFFIX):
        return None
    if value.rpartition("@")[2] in _PLACEHOLDER_EMAILS:
        return None
    return value


def normalise_phone(value: str, region: str = "US") -> str | None:
    """Return the number in E.164 (+14155550123), or None when it is not a valid number."""
    raw = unquote(value or "").strip()
    if raw.startswith("tel:"):
        raw = raw[4:]
    if sum(ch.isdigit() for ch in raw) < 7:
        return None
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def social_profile(url: str) -> tuple[str, str, str] | None:
    """Return (network, handle, canonical URL) for a social profile link, else None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    host = (parts.hostname or "").lower()
    for network, (hosts, pattern, fmt) in SOCIAL.items():
        if any(host == h or host.endswith("." + h) for h in hosts):
            match = pattern.match(parts.path or "/")
            if match is None:
                return None
            groups = match.groups()
            handle = groups[-1] if network != "youtube" else groups[0]
            return network, handle, fmt.format(*groups)
    return None


def region_for(locale: str) -> str:
    """Default phone region from a page's language tag (``en-GB`` → GB); US when unknown."""
    _, _, region = (locale or "").replace("_", "-").partition("-")
    return region.upper() if len(region) == 2 else "US"
