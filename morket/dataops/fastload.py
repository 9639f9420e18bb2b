"""The import's row-level fast path: one regular expression accepts a whole row of plain cells.

Most rows of a CSV file hold plain text, plain numbers and ISO dates. For such a row the mapped
cells joined with tabs are already the line PostgreSQL's COPY text format reads (an empty field
is NULL), so one match of the joined row replaces the parsing of every cell. A row that does not
match (a tab, newline or backslash in a cell, a blank-looking cell, a number with separators, a
date that needs the calendar) goes through the per-cell parser, which accepts or explains it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence

from morket.tables.cells import TEXT_MAX

# COPY's null string is the empty field, so a blank cell needs no rewriting.
COPY_OPTIONS = "(FORMAT text, NULL '')"
# A row whose joined cells are no longer than this has no text cell over any text limit.
ROW_CHARS_MAX = TEXT_MAX

_PLAIN = r"[^\t\n\r\\\x00]"  # a character COPY's text format reads as itself
# Empty, or with at least one visible character (a cell of only spaces is blank, hence NULL).
# The group is atomic so that a row that fails does not backtrack through every split of its cells.
_TEXT = rf"(?>(?:{_PLAIN}*[^\s\\\x00]{_PLAIN}*)?)"
# What PostgreSQL's numeric reads exactly as the number parser would: no sign +, no separators,
# within the limits of 10^18 and 12 decimal places.
_NUMBER = r"(?:-?[0-9]{1,15}(?:\.[0-9]{1,12})?)?"
# ISO dates whose day exists in every year; 29 February goes to the calendar check.
_DATE = (
    r"(?:(?!0000)[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31))?"
)
CELL_PATTERNS = {
    "text": _TEXT,
    "long_text": _TEXT,
    "number": _NUMBER,
    "currency": _NUMBER,
    "percent": _NUMBER,
    "date": _DATE,
}


def row_matcher(column_types: Sequence[str]) -> Callable[[str], object] | None:
    """Return a test of a tab-joined row of cells of ``column_types``, or None when a type has no fast path."""
    if not column_types or any(kind not in CELL_PATTERNS for kind in column_types):
        return None
    return re.compile(r"\t".join(CELL_PATTERNS[kind] for kind in column_types)).fullmatch


def picker(sources: Sequence[int]) -> Callable[[list[str]], Sequence[str]]:
    """Return a function taking the fields at ``sources`` from a record, in order."""
    if len(sources) == 1:
        (only,) = sources
        return lambda fields: (fields[only],)
    return operator.itemgetter(*sources)
