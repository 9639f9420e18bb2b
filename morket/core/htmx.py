"""htmx helpers: decide page or fragment the way ARCHITECTURE.md §7 says."""

from __future__ import annotations

from flask import request


def wants_fragment() -> bool:
    """True for an htmx request that is not boosted (boosted requests get whole pages)."""
    return request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
