"""A column's resolved parser (what bulk writers use) answers exactly as ``parse_cell`` does,
including on the values its short paths take: clean strings and integers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from morket.tables.cells import TEXT_MAX, CellError, cell_parser, parse_cell

EDGES = [
    None,
    "",
    "   ",
    "\t\n",
    "Ada",
    " Ada ",
    "a\x00b",
    "\ud800",
    "x" * TEXT_MAX,
    "x" * (TEXT_MAX + 1),
    0,
    -0,
    7,
    -12,
    10**18 - 1,
    10**18,
    -(10**18),
    True,
    False,
    1.5,
    "1,234.50 USD",
    "12%",
    [],
    ["Lead"],
    {"a": 1},
    "Ada@Example.COM",
]
TYPES = [
    ("text", {}),
    ("long_text", {}),
    ("number", {}),
    ("currency", {"currency": "EUR"}),
    ("percent", {}),
    ("email", {}),
    ("checkbox", {}),
    ("single_select", {"options": ["Lead"]}),
    ("multi_select", {"options": ["Lead"]}),
    ("json", {}),
    ("formula", {}),
]


def _outcome(parse, raw):
    try:
        value = parse(raw)
    except CellError as exc:
        return ("refused", str(exc))
    return ("stored", type(value).__name__, value)


@pytest.mark.parametrize(("kind", "config"), TYPES)
def test_the_resolved_parser_agrees_with_parse_cell(kind, config):
    parse = cell_parser(kind, config)
    for raw in EDGES:
        assert _outcome(parse, raw) == _outcome(lambda r: parse_cell(kind, config, r), raw), (kind, raw)


def test_short_paths_still_refuse_what_the_column_cannot_store():
    text, number = cell_parser("text", {}), cell_parser("number", {})
    assert text("Ada") == "Ada" and text("  ") is None
    with pytest.raises(CellError, match="NUL"):
        text("a\x00b")
    with pytest.raises(CellError, match="longer than"):
        text("x" * (TEXT_MAX + 1))
    assert number(42) == Decimal(42) and isinstance(number(42), Decimal)
    with pytest.raises(CellError, match="too large"):
        number(10**18)
    with pytest.raises(CellError, match="true/false"):
        number(True)
