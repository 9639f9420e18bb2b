"""CSV export: streamed from COPY, formula cells neutralised in SQL, Excel and raw options, views, tenancy."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select

from morket.dataops.models import DataRun
from morket.tables import service as tables
from tests.factories import login

RISKY = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tlead", "\rcr", "\nlf", "-5", "+1.5", "plain", "a=b"]
SAFE = ["'=1+2", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tlead", "'\rcr", "'\nlf", "-5", "+1.5", "plain", "a=b"]


def _table(workspace, user):
    table = tables.create_table(
        workspace,
        user,
        "=Leads",
        columns=[
            {"name": "Note", "type": "text"},
            {"name": "Amount", "type": "number"},
            {"name": "Won", "type": "checkbox"},
            {"name": "-Secret", "type": "text"},
        ],
    )
    rows = [{"Note": value, "Amount": -i, "Won": i % 2 == 0, "-Secret": f"s{i}"} for i, value in enumerate(RISKY)]
    tables.insert_rows(workspace, user, table, rows)
    return table


def _get(client, workspace, table, query: str = ""):
    return client.get(f"/w/{workspace.slug}/tables/{table.id}/export.csv{query}")


def test_export_neutralises_formulas_in_sql_but_keeps_numbers(client, db, owner):
    workspace, user = owner
    table = _table(workspace, user)
    login(client, user)

    resp = _get(client, workspace, table)

    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    body = resp.get_data()
    assert not body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[0] == ["Note", "Amount", "Won", "'-Secret"]
    assert [r[0] for r in rows[1:]] == SAFE
    assert [r[1] for r in rows[1:]] == ["0"] + [str(-i) for i in range(1, len(RISKY))]
    assert rows[1][2] == "true" and rows[2][2] == "false"
    run = db.session.scalars(select(DataRun).where(DataRun.workspace_id == workspace.id)).one()
    assert (run.kind, run.status, run.rows_out, run.created_by_id) == ("export", "done", len(RISKY), user.id)


def test_excel_option_adds_a_bom_and_raw_keeps_values(client, db, owner):
    workspace, user = owner
    table = _table(workspace, user)
    login(client, user)
    assert _get(client, workspace, table, "?excel=1").get_data().startswith(b"\xef\xbb\xbfNote,")
    raw = list(csv.reader(io.StringIO(_get(client, workspace, table, "?raw=1").get_data(as_text=True), newline="")))
    assert raw[0][3] == "-Secret"
    assert [r[0] for r in raw[1:]] == RISKY


def test_export_follows_the_view_filter_sort_and_hidden_columns(client, db, owner):
    workspace, user = owner
    table = _table(workspace, user)
    note, amount, won, secret = (c.id for c in table.live_columns)
    view = tables.create_view(
        workspace,
        user,
        table,
        "Won only",
        sort=[{"column_id": amount, "dir": "asc"}],
        filters={"op": "and", "conditions": [{"column_id": won, "operator": "is_true"}]},
        hidden_column_ids=[secret],
    )
    login(client, user)
    rows = list(csv.DictReader(io.StringIO(_get(client, workspace, table, f"?view={view.id}").get_data(as_text=True))))
    assert list(rows[0]) == ["Note", "Amount", "Won"]
    assert [r["Amount"] for r in rows] == ["-10", "-8", "-6", "-4", "-2", "0"]


def test_another_workspace_gets_404(client, db, owner, stranger):
    workspace, user = owner
    table = _table(workspace, user)
    other, intruder = stranger
    login(client, intruder)
    assert _get(client, workspace, table).status_code == 404
    assert client.get(f"/w/{other.slug}/tables/{table.id}/export.csv").status_code == 404


def _plain_table(workspace, user):
    table = tables.create_table(
        workspace, user, "Plain", columns=[{"name": "Company", "type": "text"}, {"name": "Seats", "type": "number"}]
    )
    rows = [{"Company": f"Company {i}", "Seats": i} for i in range(5)] + [{"Company": "Two\nlines", "Seats": 9}]
    tables.insert_rows(workspace, user, table, rows)
    return table


@pytest.mark.parametrize("query", ["", "?excel=1", "?raw=1"])
def test_every_line_of_an_export_ends_in_crlf(client, db, owner, query):
    workspace, user = owner
    table = _plain_table(workspace, user)
    login(client, user)

    body = _get(client, workspace, table, query).get_data()

    body = body.removeprefix(b"\xef\xbb\xbf")
    records = body.split(b"\r\n")
    assert records[-1] == b""  # the last line ends in CRLF too
    assert records[:-1] == [b"Company,Seats", *(b"Company %d,%d" % (i, i) for i in range(5)), b'"Two\nlines",9']
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[-1] == ["Two\nlines", "9"]  # a line break inside a cell is the cell's own
