"""The grid's window route on its fast path: same cells as the cell macro, fresh metadata, two statements."""

from __future__ import annotations

import html
import re
import time
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from morket.tables import service
from tests.factories import login
from tests.support.seeding import seed_rows

TYPES = [
    {"name": "Name", "type": "text"},
    {"name": "Notes", "type": "long_text"},
    {"name": "Seats", "type": "number"},
    {"name": "Revenue", "type": "currency", "config": {"currency": "EUR"}},
    {"name": "Share", "type": "percent"},
    {"name": "Founded", "type": "date"},
    {"name": "Seen at", "type": "datetime"},
    {"name": "Active", "type": "checkbox"},
    {"name": "Stage", "type": "single_select", "config": {"options": ["Lead", 'Won <big> & "sure"']}},
    {"name": "Tags", "type": "multi_select", "config": {"options": ["a", "b"]}},
    {"name": "Email", "type": "email"},
    {"name": "Site", "type": "url"},
    {"name": "Data", "type": "json"},
]
# Stored values as PostgreSQL returns them, awkward ones included: markup characters, empty
# texts, exponents, signs, more digits than Decimal's context keeps, NULLs everywhere.
VALUES = [
    (
        "<b>Acme</b> & 'Sons' \"Ltd\"",
        "two\nlines",
        Decimal("1234567"),
        Decimal("1234567.5"),
        Decimal("12.50"),
        date(1999, 12, 31),
        datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        True,
        'Won <big> & "sure"',
        ["a", "b"],
        "x@acme.com",
        "https://acme.com/?a=1&b=2",
        '{"k": "<v>"}',
    ),
    ("", "", Decimal("100.00"), Decimal("-0.50"), Decimal("1E+2"), None, None, False, "Lead", None, "", "", None),
    (None,) * len(TYPES),
    (
        "plain",
        "x" * 300,
        Decimal("999999999999999999.123456789012"),
        Decimal("0.000001"),
        Decimal("-12345.678"),
        date(2000, 1, 1),
        None,
        None,
        None,
        ["b"],
        None,
        None,
        "[1, 2]",
    ),
]
_CELL = re.compile(r'<div class="grid-cell ([^"]*)" data-col-id="(\d+)" [^>]*?>(.*?)</div>', re.S)
_ATTR = re.compile(r'(data-type|data-raw|title)="([^"]*)"')


def _cells(fragment: str) -> list[tuple[str, int, dict[str, str], str]]:
    """(classes, column id, attributes, text) of every cell, attributes in any order."""
    found = []
    for match in re.finditer(r'<div class="grid-cell [^>]*>.*?</div>', fragment, re.S):
        cell = match.group(0)
        classes, column_id, body = _CELL.match(cell).groups()
        opening = cell[: cell.index(">") + 1]
        found.append((classes, int(column_id), dict(_ATTR.findall(opening)), body))
    return found


@pytest.fixture
def typed(db, owner):
    workspace, user = owner
    table = service.create_table(workspace, user, "Typed", columns=TYPES)
    seed_rows(workspace, user, table, len(VALUES), values=VALUES)
    db.session.flush()
    return table


def _window(client, workspace, table, **params) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    resp = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows?{query}", headers={"HX-Request": "true"})
    assert resp.status_code == 200, resp.status_code
    return resp.get_data(as_text=True)


def test_window_cells_match_the_cell_macro(app, db, client, owner, typed):
    workspace, user = owner
    login(client, user)
    body = _window(client, workspace, typed, start=0, limit=10)
    rows = service.read_window(workspace, user, typed, None, 0, 10)
    macro = app.jinja_env.get_template("tables/_cell.html").module.render_cell
    expected = "".join(str(macro(c, v)) for row in rows for c, v in zip(typed.live_columns, row.cells, strict=True))
    assert _cells(body) == _cells(expected)
    assert len(_cells(body)) == len(VALUES) * len(TYPES)
    # What a user sees for the awkward values, spelled out.
    first = {cid: (attrs["data-raw"], shown) for _, cid, attrs, shown in _cells(body)[: len(TYPES)]}
    by_name = {c.name: c.id for c in typed.live_columns}
    assert html.unescape(first[by_name["Name"]][1]) == "<b>Acme</b> & 'Sons' \"Ltd\""
    assert first[by_name["Revenue"]] == ("1234567.5", "1,234,567.50 EUR")
    assert first[by_name["Seats"]] == ("1234567", "1,234,567")
    assert first[by_name["Share"]] == ("12.5", "12.5%")
    assert [int(p) for p in re.findall(r'data-pos="(\d+)"', body)] == list(range(len(VALUES)))


def test_window_shows_column_changes_at_once(db, client, owner, typed):
    """Parsed columns are cached by their layout: a change of config, hiding or deleting shows at once."""
    workspace, user = owner
    login(client, user)
    revenue = next(c for c in typed.live_columns if c.name == "Revenue")
    notes = next(c for c in typed.live_columns if c.name == "Notes")
    assert "1,234,567.50 EUR" in _window(client, workspace, typed)
    db.session.execute(
        text("UPDATE table_columns SET config = CAST(:c AS jsonb) WHERE id = :id"),
        {"c": '{"currency": "USD"}', "id": revenue.id},
    )
    body = _window(client, workspace, typed)
    assert "1,234,567.50 USD" in body and "EUR" not in body
    db.session.execute(text("UPDATE table_columns SET hidden = true WHERE id = :id"), {"id": notes.id})
    assert f'data-col-id="{notes.id}"' not in _window(client, workspace, typed)
    db.session.expire_all()
    table = service.get_table_or_404(workspace, typed.id)
    service.delete_column(workspace, user, table, revenue.id)
    assert f'data-col-id="{revenue.id}"' not in _window(client, workspace, typed)


def test_view_window_hides_columns_and_counts_its_rows(db, client, owner, seeded):
    workspace, user = owner
    login(client, user)
    cols = {c.name: c for c in seeded.live_columns}
    view = service.create_view(
        workspace,
        user,
        seeded,
        "Big",
        sort=[{"column_id": cols["Employees"].id, "dir": "desc"}],
        filters={"op": "and", "conditions": [{"column_id": cols["Stage"].id, "operator": "any_of", "value": ["Lead"]}]},
        hidden_column_ids=[cols["Founded"].id],
    )
    db.session.flush()
    expected = list(
        db.session.execute(
            text(
                f"SELECT id FROM ut.{seeded.storage_name} WHERE {cols['Stage'].storage_name} = 'Lead' "  # noqa: S608
                f"ORDER BY {cols['Employees'].storage_name} DESC NULLS LAST, id"
            )
        ).scalars()
    )
    # The first read builds the order (and commits it); the later ones take the fast path.
    for start in (0, 0, 7):
        resp = client.get(f"/w/{workspace.slug}/tables/{seeded.id}/rows?start={start}&limit=20&view={view.id}")
        assert resp.status_code == 200
        body = resp.get_data(as_text=True)
        assert [int(i) for i in re.findall(r'data-row-id="(\d+)"', body)] == expected[start : start + 20]
        assert resp.headers["X-Grid-Total"] == str(len(expected))
        assert f'data-col-id="{cols["Founded"].id}"' not in body


def test_fast_window_is_two_statements_with_the_membership(db, client, owner, seeded, query_budget):
    workspace, user = owner
    login(client, user)
    url = f"/w/{workspace.slug}/tables/{seeded.id}/rows?start=500&limit=100"
    client.get(url)
    with query_budget(2) as statements:
        body = client.get(url).get_data(as_text=True)
    assert body.count('class="grid-row"') == 100
    assert not any(s.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE", "CREATE")) for s in statements)


def test_window_of_another_workspace_is_404(db, client, owner, stranger, seeded):
    workspace, _ = owner
    other_workspace, other_user = stranger
    theirs = service.create_table(other_workspace, other_user, "Theirs", columns=[{"name": "A", "type": "text"}])
    their_view = service.list_views(other_workspace, theirs)[0]
    mine = service.list_views(workspace, seeded)[0]
    db.session.flush()
    login(client, other_user)
    base = f"/w/{other_workspace.slug}/tables"
    # A's table through B's workspace, and B's table with A's view: both unknown to B.
    assert client.get(f"{base}/{seeded.id}/rows?start=0&limit=10").status_code == 404
    assert client.get(f"{base}/{theirs.id}/rows?start=0&limit=10&view={mine.id}").status_code == 404
    assert client.get(f"{base}/{theirs.id}/rows?start=0&limit=10&view={their_view.id}").status_code == 200
    # And B is not a member of A's workspace at all.
    assert client.get(f"/w/{workspace.slug}/tables/{seeded.id}/rows").status_code == 404


def test_bad_window_arguments_are_clear_errors(db, client, owner, seeded):
    workspace, user = owner
    login(client, user)
    base = f"/w/{workspace.slug}/tables/{seeded.id}/rows"
    assert client.get(f"{base}?start=-1").status_code == 422
    assert client.get(f"{base}?limit=100000").status_code == 422
    assert client.get(f"{base}?view=abc").status_code == 404
    assert client.get(f"{base}?view=999999999").status_code == 404


def test_pooled_connection_ended_by_the_server_is_replaced_without_a_ping_per_request(database_url):
    """Checkout skips the SELECT 1 for a recently used connection, yet a terminated one is replaced."""
    from sqlalchemy import create_engine, event

    engine = create_engine(make_url(database_url).set(drivername="postgresql+psycopg"), pool_size=1, max_overflow=0)
    admin = create_engine(make_url(database_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    statements: list[str] = []
    try:
        with engine.connect() as conn:
            first = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with engine.connect() as conn:  # recently used: no ping, the same backend
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() == first
        assert statements == ["SELECT pg_backend_pid()"]
        with admin.connect() as other:
            assert other.exec_driver_sql("SELECT pg_terminate_backend(%(p)s)", {"p": first}).scalar_one()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the backend exits and closes its socket
            with admin.connect() as other:
                gone = not other.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %(p)s", {"p": first}
                ).scalar()
            if gone:
                break
            time.sleep(0.05)
        with engine.connect() as conn:  # the pool notices at checkout and hands out a new connection
            second = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        assert second != first
    finally:
        engine.dispose()
        admin.dispose()


def test_reads_without_a_transaction_until_a_write_needs_one(app):
    """On the engine's own connections (as in production), the window's reads run outside a
    transaction; a path that writes gets a transaction back before its first statement."""
    from flask import g

    from morket.core.tenancy import reads_without_transaction, transaction_for_writes
    from morket.extensions import db as _db

    with app.test_request_context("/"):
        assert reads_without_transaction()
        _db.session.execute(text("SELECT 1"))
        driver = _db.session.connection().connection.dbapi_connection
        assert driver.autocommit and driver.info.transaction_status == 0  # idle: no BEGIN was sent
        transaction_for_writes()
        assert "morket_autocommit" not in g
        _db.session.execute(text("SELECT 1"))
        driver = _db.session.connection().connection.dbapi_connection
        assert not driver.autocommit and driver.info.transaction_status == 2  # in a transaction
        assert not reads_without_transaction()  # too late once a transaction is open
        _db.session.rollback()
        _db.session.remove()
