"""Cell values per type, through the real storage: good values round-trip, bad ones are clear errors.

Hypothesis drives every column type with values meant for it and with arbitrary ones; the only
acceptable outcomes are a stored value equal to what the parser promised, or ValidationFailed
with a message. Anything else (a database error, a silent change) fails the test.
"""

from __future__ import annotations

import json
import string
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morket.core.errors import ValidationFailed
from morket.tables import service
from morket.tables.cells import CellError, parse_cell

OPTIONS = ["Lead", "Customer", "Churned", "Ünïcode ☃"]
TYPED = {
    "text": {},
    "long_text": {},
    "number": {},
    "currency": {"currency": "EUR"},
    "percent": {},
    "date": {},
    "datetime": {},
    "checkbox": {},
    "single_select": {"options": OPTIONS},
    "multi_select": {"options": OPTIONS},
    "email": {},
    "url": {},
    "phone": {},
    "domain": {},
    "json": {},
    "enrichment": {},
    "ai": {},
}
HYPOTHESIS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@pytest.fixture
def typed_table(db, owner):
    workspace, user = owner
    columns = [{"name": kind, "type": kind, "config": config} for kind, config in TYPED.items()]
    return service.create_table(workspace, user, "Every type", columns=columns)


def _normal(value, kind: str):
    """Compare JSON by value: numbers as Decimal, so 1e308 and 10**308 are the same number."""
    if kind in ("json", "enrichment") and value is not None:
        return json.loads(json.dumps(value), parse_float=Decimal, parse_int=Decimal)
    return value


def _store_and_read(owner, table, kind, raw):
    """Insert one cell through the service and read it back; return (expected, stored) or None."""
    workspace, user = owner
    column = next(c for c in table.live_columns if c.name == kind)
    try:
        expected = parse_cell(kind, column.config, raw)
    except CellError:
        expected = CellError
    try:
        row_id = service.insert_rows(workspace, user, table, [{column.id: raw}])[0]
    except ValidationFailed as exc:
        assert expected is CellError, f"{raw!r} parsed but the insert refused it: {exc.message}"
        assert exc.message and exc.fields
        return None
    assert expected is not CellError, f"{raw!r} was stored although the parser refuses it"
    stored = service.get_row(workspace, user, table, row_id).values(table)[column.id]
    return expected, stored


def _assert_round_trip(owner, table, kind, raw):
    outcome = _store_and_read(owner, table, kind, raw)
    if outcome is None:
        return
    expected, stored = outcome
    assert _normal(stored, kind) == _normal(expected, kind), (
        f"{kind}: {raw!r} stored as {stored!r}, expected {expected!r}"
    )
    # A stored value fed back in gives the same value (JSON text is parsed, so JSON is left out).
    if expected is not None and kind not in ("json", "enrichment"):
        column = next(c for c in table.live_columns if c.name == kind)
        assert _normal(parse_cell(kind, column.config, stored), kind) == _normal(expected, kind), (
            "stored value does not re-parse"
        )


ANYTHING = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(["\x00", "\ud800", "", "  "]),
    st.dates(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.lists(st.text(max_size=10), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
)

STORABLE = st.characters(codec="utf-8", exclude_characters="\x00")
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(STORABLE, max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(STORABLE, max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
LABEL = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)
GOOD = {
    "text": st.text(STORABLE, max_size=200),
    "long_text": st.text(STORABLE, max_size=2000),
    "ai": st.text(STORABLE, max_size=200),
    "number": st.decimals(min_value=-(10**15), max_value=10**15, places=6) | st.integers(-(10**15), 10**15),
    "currency": st.builds(lambda n: f"€{n:,.2f}", st.floats(min_value=-1e9, max_value=1e9)),
    "percent": st.builds(lambda n: f"{n}%", st.integers(-1000, 1000)),
    "date": st.dates() | st.dates().map(date.isoformat),
    "datetime": st.datetimes(timezones=st.just(UTC) | st.just(timezone(timedelta(hours=-5))))
    .filter(lambda d: 1 < d.year < 9999)
    .map(lambda d: d.isoformat()),
    "checkbox": st.booleans() | st.sampled_from(["yes", "No", "TRUE", "0", "x"]),
    "single_select": st.sampled_from(OPTIONS) | st.sampled_from(OPTIONS).map(str.upper),
    "multi_select": st.lists(st.sampled_from(OPTIONS), max_size=4) | st.just("lead, customer"),
    "email": st.builds(lambda a, b: f"{a}@{b}.com", LABEL, LABEL),
    "url": st.builds(lambda a, b: f"https://{a}.io/{b}?q=1", LABEL, LABEL),
    "phone": st.builds(lambda n: f"+1 (555) {n:07d}", st.integers(0, 9_999_999)),
    "domain": st.builds(lambda a: f"https://www.{a}.co.uk/about", LABEL),
    "json": JSON_VALUES.filter(lambda v: v is not None and not isinstance(v, str)),
    "enrichment": JSON_VALUES.filter(lambda v: v is not None).map(json.dumps),
}


@pytest.mark.parametrize("kind", list(GOOD))
def test_good_values_round_trip(db, owner, typed_table, kind):
    @HYPOTHESIS
    @given(raw=GOOD[kind])
    def check(raw):
        outcome = _store_and_read(owner, typed_table, kind, raw)
        assert outcome is not None, f"a good {kind} value {raw!r} was refused"
        _assert_round_trip(owner, typed_table, kind, raw)

    check()


@pytest.mark.parametrize("kind", list(TYPED))
def test_any_value_is_stored_faithfully_or_refused_clearly(db, owner, typed_table, kind):
    @HYPOTHESIS
    @given(raw=ANYTHING)
    def check(raw):
        _assert_round_trip(owner, typed_table, kind, raw)

    check()


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        ("number", "12abc", "is not a number"),
        ("number", float("nan"), "finite"),
        ("number", "1e40", "too large"),
        ("number", True, "true/false"),
        ("date", "2024-02-30", "is not a date"),
        ("datetime", "yesterday", "is not a date and time"),
        ("email", "not-an-email", "is not an email"),
        ("url", "javascript:alert(1)", "web address"),
        ("domain", "no spaces.com", "is not a domain"),
        ("phone", "call me", "is not a phone"),
        ("checkbox", "maybe", "checked or unchecked"),
        ("single_select", "Prospect", "is not an option"),
        ("multi_select", ["Lead", "Nope"], "is not an option"),
        ("json", "{bad json", "Not valid JSON"),
        ("text", "a\x00b", "NUL"),
    ],
)
def test_bad_values_name_the_problem(db, owner, typed_table, kind, raw, message):
    workspace, user = owner
    with pytest.raises(ValidationFailed, match=message) as caught:
        service.insert_rows(workspace, user, typed_table, [{kind: raw}])
    assert any(kind in key for key in caught.value.fields)


def test_one_bad_cell_rejects_the_whole_batch(db, owner, typed_table):
    workspace, user = owner
    with pytest.raises(ValidationFailed, match="1 cell could not be saved") as caught:
        service.insert_rows(workspace, user, typed_table, [{"number": 1}, {"number": "two"}, {"number": 3}])
    assert list(caught.value.fields) == ["rows[1].number"]
    assert service.count_rows(workspace, user, typed_table) == 0


def test_update_cell_validates_and_returns_the_stored_value(db, owner, typed_table):
    workspace, user = owner
    row_id = service.insert_rows(workspace, user, typed_table, [{"domain": "acme.com"}])[0]
    domain = next(c for c in typed_table.live_columns if c.name == "domain")
    assert service.update_cell(workspace, user, typed_table, row_id, domain.id, "HTTPS://WWW.Globex.COM/x") == (
        "globex.com"
    )
    with pytest.raises(ValidationFailed, match="is not a domain"):
        service.update_cell(workspace, user, typed_table, row_id, domain.id, "nope")
    assert service.get_row(workspace, user, typed_table, row_id).values(typed_table)[domain.id] == "globex.com"


def test_unknown_column_and_formula_cells_are_refused(db, owner, typed_table):
    workspace, user = owner
    with pytest.raises(ValidationFailed, match="No column “Ghost”"):
        service.insert_rows(workspace, user, typed_table, [{"Ghost": 1}])
    formula = service.add_column(workspace, user, typed_table, "Total", "formula", config={"expression": "1 + 1"})
    with pytest.raises(ValidationFailed, match="computed"):
        service.insert_rows(workspace, user, typed_table, [{formula.id: 5}])


def test_datetimes_are_instants(db, owner, typed_table):
    workspace, user = owner
    row_id = service.insert_rows(workspace, user, typed_table, [{"datetime": "2026-03-01T09:30:00-05:00"}])[0]
    column = next(c for c in typed_table.live_columns if c.name == "datetime")
    stored = service.get_row(workspace, user, typed_table, row_id).values(typed_table)[column.id]
    assert stored == datetime(2026, 3, 1, 14, 30, tzinfo=UTC)
