"""Wording helpers shared by pages, messages and emails."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """Return ``count`` with its noun in the right number: "1 row", "2 rows", "1,000 rows"."""
    word = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {word}"
