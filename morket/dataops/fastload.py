"""The import's fast path: a batch of records is typed column by column, not cell by cell.

Most columns of a CSV file hold plain text, plain numbers or ISO dates. For such a column the
cells are already what PostgreSQL's COPY text format reads (an empty field is NULL), so a few
string scans and one regular expression over the whole column of a batch replace the parsing of
every cell. A column that does not pass in a batch (a tab, newline or backslash in a cell, a cell
that starts with a space, a number with separators or a sign +) sends its irregular cells through
the per-cell parser, which accepts or explains each cell; halving the batch finds those cells.
"""

from __future__ import annotations

import contextlib
import gc
import operator
import re
from collections.abc import Callable, Iterator, Sequence

from morket.tables.cells import LONG_TEXT_MAX, TEXT_MAX

# COPY's null string is the empty field, so a blank cell needs no rewriting.
COPY_OPTIONS = "(FORMAT text, NULL '')"
BATCH_ROWS = 1000
# A part of a batch this small that holds an irregular cell goes to the per-cell parser whole.
SMALLEST_HALF = 8

TEXT_LIMITS = {"text": TEXT_MAX, "long_text": LONG_TEXT_MAX}
# Characters COPY's text format does not read as themselves (the tab is counted separately).
_ESCAPED = ("\\", "\n", "\r", "\x00")
# A cell that starts with a space may be blank, which is NULL: the per-cell parser decides.
_LEADING_SPACE = re.compile(r"\t[^\S\t]").search
# What PostgreSQL's numeric reads exactly as the number parser would: no sign +, no separators,
# within the limits of 10^18 and 12 decimal places.
_NUMBER = r"(?:-?[0-9]{1,15}(?:\.[0-9]{1,12})?)?"
# ISO dates of the Gregorian calendar from year 1, 29 February of leap years included.
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = (
    r"(?:(?!0000)[0-9]{4}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    r"|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    rf"|{_LEAP_YEAR}-02-29)?"
)
# Emails and domains already in the form their parsers store (``tables.cells``): a plain ASCII
# local part, a lower-case host of letters, digits and hyphens, no ``www.`` or ``xn--`` label to
# rewrite, within the parsers' length limits. Anything else goes through the parser.
_LABEL = r"(?!xn--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST = rf"(?:{_LABEL}\.)+[a-z]{{2,63}}"
_EMAIL = rf"(?:(?=[^\t]{{6,320}}(?![^\t]))[A-Za-z0-9._%+!#$&'*/=?^`{{|}}~-]{{1,64}}@{_HOST})?"
_DOMAIN = rf"(?:(?=[^\t]{{4,253}}(?![^\t]))(?!www\.){_HOST})?"
# Each pattern matches a whole column of cells, each preceded by a tab, without backtracking.
_COLUMN_MATCHERS = {
    kind: re.compile(rf"(?:\t(?>{pattern}))*+").fullmatch
    for kind, pattern in (
        ("number", _NUMBER),
        ("currency", _NUMBER),
        ("percent", _NUMBER),
        ("date", _DATE),
        ("email", _EMAIL),
        ("domain", _DOMAIN),
    )
}


def plain_cells(column_type: str, cells: Sequence[str]) -> bool:
    """Whether every cell of ``cells`` (not empty) is its own COPY text in a column of ``column_type``."""
    joined = "\t" + "\t".join(cells)
    # A tab inside a cell would be COPY's column separator (and the matchers' cell separator).
    if joined.count("\t") != len(cells):
        return False
    limit = TEXT_LIMITS.get(column_type)
    if limit is not None:
        return (
            not any(ch in joined for ch in _ESCAPED)
            and _LEADING_SPACE(joined) is None
            and max(map(len, cells)) <= limit
        )
    match = _COLUMN_MATCHERS.get(column_type)
    return match is not None and match(joined) is not None


def irregular_cells(column_type: str, cells: Sequence[str]) -> list[int]:
    """Return the positions of the cells that need the per-cell parser, found by halving the batch."""
    if column_type not in TEXT_LIMITS and column_type not in _COLUMN_MATCHERS:
        return list(range(len(cells)))
    found: list[int] = []
    pending = [(0, len(cells))]
    while pending:
        low, high = pending.pop()
        if plain_cells(column_type, cells[low:high]):
            continue
        if high - low <= SMALLEST_HALF:
            found.extend(range(low, high))
        else:
            middle = (low + high) // 2
            pending += [(middle, high), (low, middle)]
    return sorted(found)


def picker(sources: Sequence[int]) -> Callable[[list[str]], Sequence[str]]:
    """Return a function taking the fields at ``sources`` from a record, in order."""
    if len(sources) == 1:
        (only,) = sources
        return lambda fields: (fields[only],)
    return operator.itemgetter(*sources)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector while batches of records, which hold no cycles, are alive.

    Each batch keeps thousands of lists and tuples alive at once, and every few hundred of them
    would otherwise start a collection that walks them (and, now and then, the whole app).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
