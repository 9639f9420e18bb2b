"""Number formats per column: the formatter, the checked config, the format form, the window, undo."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morket.core.errors import ValidationFailed
from morket.tables import column_service, service, undo
from morket.tables.cells import CellError, parse_cell
from morket.tables.column_configs import clean_config
from morket.tables.number_format import CURRENCY_CODES, NumberFormat, format_number, format_of
from tests.factories import MembershipFactory, csrf_token, login

FORMATS = st.builds(
    NumberFormat,
    decimals=st.none() | st.integers(0, 6),
    thousands=st.booleans(),
    style=st.sampled_from(["plain", "percent", "currency"]),
    currency=st.sampled_from(CURRENCY_CODES),
)
# The values a number cell holds: what parse_cell stores (under 10^18, at most 12 decimals).
STORED = st.decimals(min_value=-(10**15), max_value=10**15, places=12, allow_nan=False, allow_infinity=False)
FLOATS = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False, allow_infinity=False)


def _rounded(value: Decimal, fmt: NumberFormat) -> Decimal:
    places = fmt.places
    return value if places is None else value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


@settings(max_examples=400, deadline=None)
@given(
    value=STORED | FLOATS.map(lambda f: Decimal(repr(f))).filter(lambda d: d.as_tuple().exponent >= -12), fmt=FORMATS
)
def test_a_formatted_number_reads_back_as_the_value_rounded_to_its_decimals(value, fmt):
    shown = format_number(value, fmt)
    assert shown and shown == shown.strip()
    # What the grid shows, pasted into a number column, is the number (rounded as shown).
    assert parse_cell("number", {}, shown) == _rounded(value, fmt)
    if fmt.places is not None:
        digits = shown.removesuffix(fmt.suffix)
        assert len(digits.partition(".")[2]) == fmt.places
    assert ("," in shown) == (fmt.thousands and abs(_rounded(value, fmt)) >= 1000)
    assert shown.endswith(fmt.suffix)


@given(value=FLOATS, fmt=FORMATS)
@settings(max_examples=200, deadline=None)
def test_floats_format_as_their_decimal(value, fmt):
    assert format_number(value, fmt) == format_number(Decimal(repr(value)), fmt)


@pytest.mark.parametrize(
    ("value", "fmt", "shown"),
    [
        (Decimal("1234.5"), NumberFormat(decimals=2), "1,234.50"),
        (Decimal("1234.5"), NumberFormat(decimals=2, thousands=False), "1234.50"),
        (Decimal("1234.5"), NumberFormat(), "1,234.5"),
        (Decimal("-1234.567"), NumberFormat(decimals=1), "-1,234.6"),
        (Decimal("-0.001"), NumberFormat(decimals=2), "0.00"),
        (Decimal("0"), NumberFormat(decimals=0), "0"),
        (Decimal("0.125"), NumberFormat(decimals=2), "0.12"),
        (Decimal("12"), NumberFormat(style="percent"), "12%"),
        (Decimal("1234.5"), NumberFormat(style="currency", currency="EUR"), "1,234.50 EUR"),
        (Decimal("1234.5"), NumberFormat(decimals=0, style="currency", currency="GBP"), "1,234 GBP"),
        (
            Decimal("123456789012345678901234567890"),
            NumberFormat(decimals=2),
            "123,456,789,012,345,678,901,234,567,890.00",
        ),
        (Decimal("1E+21"), NumberFormat(thousands=False), "1000000000000000000000"),
        (None, NumberFormat(decimals=2), ""),
        (Decimal("NaN"), NumberFormat(decimals=2), ""),
        (Decimal("Infinity"), NumberFormat(), ""),
        (float("nan"), NumberFormat(), ""),
        ("12.5", NumberFormat(decimals=2), "12.50"),
        ("not a number", NumberFormat(), ""),
    ],
)
def test_format_number_examples(value, fmt, shown):
    assert format_number(value, fmt) == shown


def test_format_of_reads_typed_columns_and_ignores_unknown_values():
    assert format_of("currency", {"currency": "NOK"}) == NumberFormat(style="currency", currency="NOK")
    assert format_of("percent", {"decimals": 1, "style": "currency"}).suffix == "%"
    assert format_of("number", {"decimals": "two", "style": "odd", "thousands": False}) == NumberFormat(thousands=False)


def test_pasted_numbers_with_separators_signs_and_codes_parse_as_numbers():
    assert parse_cell("number", {}, "1,234.5") == Decimal("1234.5")
    assert parse_cell("number", {}, "12%") == Decimal("12")
    assert parse_cell("number", {}, "-1,234.50 USD") == Decimal("-1234.50")
    assert parse_cell("number", {}, "$ 99") == Decimal("99")
    assert parse_cell("currency", {"currency": "NOK"}, "1 200 NOK") == Decimal("1200")
    for bad in ("12abc", "1,23,4", "USD", "12 XYZ"):
        with pytest.raises(CellError):
            parse_cell("number", {}, bad)


# --- the config, on every write ------------------------------------------------------------------


@pytest.fixture
def deals(db, owner):
    workspace, user = owner
    table = service.create_table(
        workspace,
        user,
        "Deals",
        columns=[
            {"name": "Company", "type": "text"},
            {"name": "Amount", "type": "number"},
            {"name": "Share", "type": "percent"},
        ],
    )
    service.insert_rows(
        workspace,
        user,
        table,
        [{"Company": "Acme", "Amount": "1234.5", "Share": "12.5"}, {"Company": "Globex", "Amount": "-0.004"}],
    )
    return table


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"decimals": 11}, "Decimals is a whole number from 0 to 10"),
        ({"decimals": "2"}, "Decimals is a whole number from 0 to 10"),
        ({"thousands": "yes"}, "Thousands separator is true or false"),
        ({"style": "fancy"}, "Style is plain, percent or currency"),
        ({"style": "currency", "currency": "XYZ"}, "Currency is one of USD"),
    ],
)
def test_bad_formats_are_refused_with_a_clear_message(deals, config, message):
    with pytest.raises(ValidationFailed) as caught:
        clean_config(deals, "number", config)
    assert message in caught.value.message


def test_a_number_formula_keeps_its_format_and_a_text_formula_drops_it(deals):
    config = {"expression": "{Amount} * 2", "decimals": 2, "style": "currency", "currency": "eur"}
    assert clean_config(deals, "formula", config) == {
        "expression": "{Amount} * 2",
        "result_type": "number",
        "decimals": 2,
        "style": "currency",
        "currency": "EUR",
    }
    text = clean_config(deals, "formula", {**config, "expression": "UPPER({Company})"})
    assert text == {"expression": "UPPER({Company})", "result_type": "text"}


# --- the format form and the window --------------------------------------------------------------


def _column(table, name):
    return next(c for c in table.live_columns if c.name == name)


def _format_url(workspace, table, column):
    return f"/w/{workspace.slug}/tables/{table.id}/columns/{column.id}/format"


def _window(client, workspace, table) -> str:
    resp = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows?start=0&limit=10", headers={"HX-Request": "true"})
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def _cell(body: str, column) -> list[tuple[str, str]]:
    return re.findall(rf'data-col-id="{column.id}" [^>]*data-raw="([^"]*)">([^<]*)</div>', body)


def test_saving_a_format_reformats_the_window_and_keeps_raw_values(db, client, owner, deals):
    workspace, user = owner
    login(client, user)
    amount = _column(deals, "Amount")
    assert _cell(_window(client, workspace, deals), amount) == [("1234.5", "1,234.5"), ("-0.004", "-0.004")]

    form = client.get(_format_url(workspace, deals, amount), headers={"HX-Request": "true"})
    page = form.get_data(as_text=True)
    assert form.status_code == 200 and "<html" not in page and "Example:" in page and ">1,234.5</output>" in page
    token = csrf_token(client, _format_url(workspace, deals, amount))  # the page without script
    resp = client.post(
        _format_url(workspace, deals, amount),
        data={"csrf_token": token, "decimals": "2", "thousands": "1", "style": "plain"},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 204
    triggers = json.loads(resp.headers["HX-Trigger"])
    assert triggers["morket:toast"]["toasts"][0]["message"] == "Amount now shows 1,234.50."
    assert triggers["morket:column-format"] == {
        "column_id": amount.id,
        "format": {"decimals": 2, "thousands": True, "suffix": ""},
    }
    db.session.expire_all()
    # The cells show the format; the editor's text (data-raw) stays the stored number.
    assert _cell(_window(client, workspace, deals), amount) == [("1234.5", "1,234.50"), ("-0.004", "0.00")]
    grid = client.get(f"/w/{workspace.slug}/tables/{deals.id}").get_data(as_text=True)
    assert 'data-format="{&#34;decimals&#34;: 2, &#34;thousands&#34;: true, &#34;suffix&#34;: &#34;&#34;}"' in grid
    rows = service.read_window(workspace, user, service.get_table_or_404(workspace, deals.id), None, 0, 2)
    assert rows[0].cells[1] == Decimal("1234.5")

    # Without script: a plain post redirects to the grid; a percent column keeps its style.
    share = _column(deals, "Share")
    resp = client.post(_format_url(workspace, deals, share), data={"csrf_token": token, "decimals": "1"})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/tables/{deals.id}")
    db.session.expire_all()
    assert _cell(_window(client, workspace, deals), share)[0] == ("12.5", "12.5%")
    assert service.get_table_or_404(workspace, deals.id).live_columns[2].config == {"decimals": 1, "thousands": False}


def test_bad_format_posts_are_422_and_change_nothing(db, client, owner, deals):
    workspace, user = owner
    login(client, user)
    amount = _column(deals, "Amount")
    token = csrf_token(client, _format_url(workspace, deals, amount))
    for data in ({"decimals": "99"}, {"decimals": "-1"}, {"style": "fancy"}, {"style": "currency", "currency": "ZZZ"}):
        resp = client.post(
            _format_url(workspace, deals, amount), data={"csrf_token": token, **data}, headers={"HX-Request": "true"}
        )
        assert resp.status_code == 422, data
        assert resp.get_data(as_text=True).strip()
    text = _column(deals, "Company")
    assert client.get(_format_url(workspace, deals, text), headers={"HX-Request": "true"}).status_code == 422
    resp = client.post(_format_url(workspace, deals, text), data={"csrf_token": token, "decimals": "2"})
    assert resp.status_code == 422
    db.session.expire_all()
    assert service.get_table_or_404(workspace, deals.id).live_columns[1].config == {}


def test_viewers_cannot_change_a_format_and_other_workspaces_get_404(db, client, owner, stranger, deals):
    workspace, user = owner
    amount = _column(deals, "Amount")
    login(client, user)
    token = csrf_token(client, _format_url(workspace, deals, amount))
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    login(client, viewer)
    assert client.get(_format_url(workspace, deals, amount)).status_code == 403
    resp = client.post(_format_url(workspace, deals, amount), data={"csrf_token": token, "decimals": "2"})
    assert resp.status_code == 403
    other, outsider = stranger
    login(client, outsider)
    for slug in (workspace.slug, other.slug):
        url = f"/w/{slug}/tables/{deals.id}/columns/{amount.id}/format"
        assert client.get(url).status_code == 404
        assert client.post(url, data={"csrf_token": token, "decimals": "2"}).status_code in (400, 404)
    db.session.expire_all()
    assert service.get_table_or_404(workspace, deals.id).live_columns[1].config == {}


def test_a_format_change_is_undone_and_redone(db, owner, deals):
    workspace, user = owner
    amount = _column(deals, "Amount")
    column_service.set_column_format(workspace, user, deals, amount.id, {"decimals": 2, "thousands": False})
    assert amount.config == {"decimals": 2, "thousands": False}
    step = undo.undo_last(workspace, user, deals)
    assert step is not None and undo.describe(step.kind) == "the format change"
    assert amount.config == {}
    undo.redo_next(workspace, user, deals)
    assert amount.config == {"decimals": 2, "thousands": False}
    # Someone else changed it since: undo says so and leaves their format.
    column_service.set_column_format(workspace, user, deals, amount.id, {"decimals": 4}, record=False)
    with pytest.raises(undo.UndoConflict):
        undo.undo_last(workspace, user, deals)
    assert amount.config == {"decimals": 4}


HYPOTHESIS_DB = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@HYPOTHESIS_DB
@given(fmt=FORMATS)
def test_the_window_and_the_cell_macro_show_the_same_format(app, db, owner, deals, fmt):
    workspace, user = owner
    amount = _column(deals, "Amount")
    fields = {"thousands": fmt.thousands, "style": fmt.style, "currency": fmt.currency}
    if fmt.decimals is not None:
        fields["decimals"] = fmt.decimals
    column_service.set_column_format(workspace, user, deals, amount.id, fields, record=False)
    macro = app.jinja_env.get_template("tables/_cell.html").module.render_cell
    for row in service.read_window(workspace, user, deals, None, 0, 2):
        cell = str(macro(amount, row.cells[1]))
        assert f">{format_number(row.cells[1], fmt)}</div>" in cell
