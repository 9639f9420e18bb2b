"""Extractors: turn a page's DOM snapshot into fields; adding a target type is adding one module here.

Each module defines ``EXTRACTOR = Extractor(...)``. The browser takes one snapshot of the page
(``snapshot.js``: title, meta tags, links, JSON-LD, marked-up people, scripts); extractors are
plain Python over that snapshot, so they are fast, testable without a browser, and never run
page code. Every string they return has been through ``normalise.clean_text`` (nh3 strips any
markup), so scraped content is inert wherever it is later shown.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from morket.core.errors import ValidationFailed

Snapshot = dict[str, Any]


@dataclass(frozen=True)
class Extractor:
    """One target type: its name, what it delivers, and the function that reads a snapshot."""

    name: str
    label: str
    fields: tuple[str, ...]
    extract: Callable[[Snapshot], dict[str, Any]]
    description: str = ""


_REGISTRY: dict[str, Extractor] = {}
_SKIP = {"normalise", "technologies", "snapshot"}


def _load() -> dict[str, Extractor]:
    if not _REGISTRY:
        for module in pkgutil.iter_modules(__path__):
            if module.name in _SKIP or module.name.startswith("_"):
                continue
            found = getattr(importlib.import_module(f"{__name__}.{module.name}"), "EXTRACTOR", None)
            if isinstance(found, Extractor):
                _REGISTRY[found.name] = found
    return _REGISTRY


def all_extractors() -> list[Extractor]:
    """Every extractor, by name."""
    return sorted(_load().values(), key=lambda e: e.name)


def get_extractor(name: str) -> Extractor:
    """Return the extractor called ``name`` or raise a validation error listing the choices."""
    found = _load().get(name)
    if found is None:
        choices = ", ".join(sorted(_load()))
        raise ValidationFailed(
            f"Unknown extractor {name!r}; choose one of {choices}.", fields={"extractor": ["unknown"]}
        )
    return found
