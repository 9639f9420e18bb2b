"""The tables JSON API: CRUD per role, tenant isolation, bulk limits, pagination, typed values."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from morket.api.tokens import encode_access_token
from morket.core.ratelimit import clear_rate_limits
from morket.tables import service, storage
from tests.api.conftest import bearer, make_team
from tests.support.properties import THROUGH_THE_APP
from tests.support.seeding import seed_rows

pytestmark = pytest.mark.usefixtures("db")

SELECT_OPTIONS = ["Lead", "Customer", "Churned"]
ALL_COLUMNS = (
    {"name": "Company", "type": "text"},
    {"name": "Notes", "type": "long_text"},
    {"name": "Employees", "type": "number"},
    {"name": "Revenue", "type": "currency", "config": {"currency": "EUR"}},
    {"name": "Growth", "type": "percent"},
    {"name": "Founded", "type": "date"},
    {"name": "Last contact", "type": "datetime"},
    {"name": "Active", "type": "checkbox"},
    {"name": "Stage", "type": "single_select", "config": {"options": SELECT_OPTIONS}},
    {"name": "Tags", "type": "multi_select", "config": {"options": SELECT_OPTIONS}},
    {"name": "Email", "type": "email"},
    {"name": "Website", "type": "url"},
    {"name": "Phone", "type": "phone"},
    {"name": "Domain", "type": "domain"},
    {"name": "Payload", "type": "json"},
)


@pytest.fixture
def team(db):
    """Workspace A with one user of each ranked role."""
    return make_team()


@pytest.fixture
def other_team(db):
    """Workspace B, whose tokens must never reach workspace A's tables."""
    return make_team()


def _headers(team, role: str) -> dict[str, str]:
    return bearer(encode_access_token(getattr(team, role).id, team.workspace.id, role))


@pytest.fixture
def headers(team):
    """Bearer headers of workspace A by role."""
    return {role: _headers(team, role) for role in ("owner", "admin", "member", "viewer")}


@pytest.fixture
def table(db, team):
    """A table of workspace A with one column of every value type and three rows."""
    table = service.create_table(team.workspace, team.owner, "Accounts", columns=ALL_COLUMNS)
    service.insert_rows(
        team.workspace,
        team.owner,
        table,
        [{"Company": "Acme", "Employees": 10}, {"Company": "Globex", "Employees": 20}, {"Company": "Initech"}],
    )
    db.session.flush()
    return table


def _column_id(table, name: str) -> int:
    return next(c.id for c in table.live_columns if c.name == name)


def _db_rows(db, table) -> list[tuple]:
    """The rows as PostgreSQL holds them, in the table's order: (id, *cells)."""
    store = storage.storage_for(table)
    columns = [store.columns[c.id] for c in table.live_columns]
    return [tuple(r) for r in db.session.execute(sa.select(store.rows.c.id, *columns).order_by(store.rows.c.pos))]


# --- tables, columns and views by role -------------------------------------------------------------


def test_member_creates_renames_and_deletes_a_table(client, headers):
    resp = client.post(
        "/api/v1/tables",
        json={"name": "Leads", "folder": "Q4", "columns": [{"name": "Company"}, {"name": "Size", "type": "number"}]},
        headers=headers["member"],
    )
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()["data"]
    assert [(c["name"], c["type"]) for c in created["columns"]] == [("Company", "text"), ("Size", "number")]
    table_id = created["id"]
    listed = client.get("/api/v1/tables", headers=headers["viewer"]).get_json()["data"]
    assert [(t["name"], t["folder"], t["row_count"]) for t in listed] == [("Leads", "Q4", 0)]
    resp = client.patch(f"/api/v1/tables/{table_id}", json={"name": "Hot leads"}, headers=headers["member"])
    assert resp.status_code == 200 and resp.get_json()["data"]["name"] == "Hot leads"
    assert client.get(f"/api/v1/tables/{table_id}", headers=headers["viewer"]).get_json()["data"]["name"] == (
        "Hot leads"
    )
    resp = client.delete(f"/api/v1/tables/{table_id}", headers=headers["admin"])
    assert resp.get_json()["data"] == {"id": table_id, "deleted": True}
    assert client.get(f"/api/v1/tables/{table_id}", headers=headers["owner"]).status_code == 404
    assert client.get("/api/v1/tables", headers=headers["owner"]).get_json()["data"] == []


def test_viewer_reads_but_cannot_change_anything(client, db, team, headers, table):
    viewer = headers["viewer"]
    base = f"/api/v1/tables/{table.id}"
    column_id = _column_id(table, "Company")
    view_id = service.list_views(team.workspace, table)[0].id
    row_id = _db_rows(db, table)[0][0]
    for path in (base, f"{base}/columns", f"{base}/rows", f"{base}/rows/{row_id}", f"{base}/views", "/api/v1/tables"):
        assert client.get(path, headers=viewer).status_code == 200, path
    writes = [
        ("post", "/api/v1/tables", {"name": "Mine"}),
        ("patch", base, {"name": "Mine"}),
        ("delete", base, None),
        ("post", f"{base}/columns", {"name": "New"}),
        ("patch", f"{base}/columns/{column_id}", {"name": "Renamed"}),
        ("delete", f"{base}/columns/{column_id}", None),
        ("post", f"{base}/rows", {"Company": "Hooli"}),
        ("post", f"{base}/rows/bulk", {"rows": [{"Company": "Hooli"}]}),
        ("patch", f"{base}/rows/{row_id}", {"Company": "Hooli"}),
        ("delete", f"{base}/rows/{row_id}", None),
        ("post", f"{base}/views", {"name": "Mine"}),
        ("patch", f"{base}/views/{view_id}", {"name": "Mine"}),
        ("delete", f"{base}/views/{view_id}", None),
    ]
    for method, path, body in writes:
        resp = getattr(client, method)(path, json=body, headers=viewer)
        assert resp.status_code == 403, (method, path, resp.status_code)
        assert resp.get_json()["error"]["code"] == "forbidden"
    data = client.get(base, headers=viewer).get_json()["data"]
    assert data["name"] == "Accounts" and len(data["columns"]) == len(ALL_COLUMNS)
    assert client.get(f"{base}/rows", headers=viewer).get_json()["meta"]["pagination"]["total"] == 3


def test_columns_add_rename_delete(client, headers, table):
    base = f"/api/v1/tables/{table.id}/columns"
    resp = client.post(base, json={"name": "Score", "type": "number"}, headers=headers["member"])
    assert resp.status_code == 201
    column = resp.get_json()["data"]
    assert column["type"] == "number" and column["name"] == "Score"
    duplicate = client.post(base, json={"name": "score"}, headers=headers["member"])
    assert duplicate.status_code == 422 and "name" in duplicate.get_json()["error"]["fields"]
    bad_type = client.post(base, json={"name": "X", "type": "spreadsheet"}, headers=headers["member"])
    assert bad_type.status_code == 422 and "type" in bad_type.get_json()["error"]["fields"]
    resp = client.patch(f"{base}/{column['id']}", json={"name": "Fit score"}, headers=headers["member"])
    assert resp.get_json()["data"]["name"] == "Fit score"
    assert client.delete(f"{base}/{column['id']}", headers=headers["member"]).status_code == 200
    names = [c["name"] for c in client.get(base, headers=headers["viewer"]).get_json()["data"]]
    assert "Fit score" not in names and names == [c["name"] for c in ALL_COLUMNS]
    assert client.patch(f"{base}/{column['id']}", json={"name": "Back"}, headers=headers["member"]).status_code == 404


def test_number_columns_take_a_number_of_decimals_and_refuse_a_bad_one(client, headers, table):
    base = f"/api/v1/tables/{table.id}/columns"
    for bad in ("two", -1, 11, 2.5, True):
        resp = client.post(
            base, json={"name": "Price", "type": "number", "config": {"decimals": bad}}, headers=headers["member"]
        )
        assert resp.status_code == 422, bad
        assert "Decimals is a whole number from 0 to 10" in resp.get_json()["error"]["message"]
    names = [c["name"] for c in client.get(base, headers=headers["viewer"]).get_json()["data"]]
    assert "Price" not in names
    resp = client.post(
        base,
        json={"name": "Price", "type": "currency", "config": {"decimals": 0, "currency": "eur"}},
        headers=headers["member"],
    )
    assert resp.status_code == 201
    assert resp.get_json()["data"]["config"] == {"decimals": 0, "currency": "EUR"}


def test_views_create_update_delete_and_read_rows_through_a_view(client, headers, table):
    base = f"/api/v1/tables/{table.id}"
    employees = _column_id(table, "Employees")
    resp = client.post(
        f"{base}/views",
        json={
            "name": "Big first",
            "sort": [{"column_id": employees, "dir": "desc"}],
            "filters": {"op": "and", "conditions": [{"column_id": employees, "operator": "gte", "value": 10}]},
        },
        headers=headers["member"],
    )
    assert resp.status_code == 201, resp.get_json()
    view = resp.get_json()["data"]
    page = client.get(f"{base}/rows?view={view['id']}", headers=headers["viewer"]).get_json()
    assert [r["values"][str(employees)] for r in page["data"]] == [20, 10]
    assert page["meta"]["pagination"] == {"total": 2, "start": 0, "limit": 100, "next_cursor": None}
    resp = client.patch(
        f"{base}/views/{view['id']}", json={"sort": [{"column_id": employees, "dir": "asc"}]}, headers=headers["member"]
    )
    assert resp.status_code == 200 and resp.get_json()["data"]["name"] == "Big first"
    page = client.get(f"{base}/rows?view={view['id']}", headers=headers["viewer"]).get_json()
    assert [r["values"][str(employees)] for r in page["data"]] == [10, 20]
    bad = client.patch(f"{base}/views/{view['id']}", json={"sort": [{"column_id": 999_999}]}, headers=headers["member"])
    assert bad.status_code == 422 and "sort" in bad.get_json()["error"]["fields"]
    assert client.delete(f"{base}/views/{view['id']}", headers=headers["member"]).status_code == 200
    assert [v["name"] for v in client.get(f"{base}/views", headers=headers["viewer"]).get_json()["data"]] == [
        "Grid view"
    ]
    assert client.get(f"{base}/rows?view={view['id']}", headers=headers["viewer"]).status_code == 404


def test_bodies_that_postgresql_cannot_store_are_refused_clearly(client, headers, table):
    base = f"/api/v1/tables/{table.id}"
    for path, body in (
        ("/api/v1/tables", {"name": "Bad", "columns": [{"name": "C", "config": {"note": "nul\x00"}}]}),
        (f"{base}/columns", {"name": "C", "type": "json", "config": {"x": float("nan")}}),
        (f"{base}/columns", {"name": "C", "config": {"k\x00": 1}}),
        (f"{base}/views", {"name": "V", "filters": {"op": "and", "conditions": [], "k\x00": 1}}),
        (f"{base}/views", {"name": "V", "sort": [{"column_id": 1, "dir": "\ud800"}]}),
    ):
        resp = client.post(path, data=json.dumps(body), content_type="application/json", headers=headers["owner"])
        assert resp.status_code == 422, (path, resp.get_json())
        assert resp.get_json()["error"]["fields"]


# --- rows ------------------------------------------------------------------------------------------


def test_rows_create_get_patch_delete_with_typed_values(client, db, headers, table):
    base = f"/api/v1/tables/{table.id}/rows"
    ids = {c.name: str(c.id) for c in table.live_columns}
    sent = {
        "Company": "Hooli",
        "Employees": 1250,
        "Revenue": "€1,250.50",
        "Growth": 12.5,
        "Founded": "2014-03-01",
        "Last contact": "2026-11-20T09:30:00+01:00",
        "Active": True,
        "Stage": "customer",
        "Tags": ["Lead", "Churned"],
        "Email": "Gavin@Hooli.COM",
        "Website": "hooli.com/about",
        "Domain": "https://www.hooli.com/x",
        "Payload": {"funding": [1, 2.5, None], "ok": True},
        ids["Phone"]: "+1 555 0100",
    }
    resp = client.post(base, json=sent, headers=headers["member"])
    assert resp.status_code == 201, resp.get_json()
    row = resp.get_json()["data"]
    assert row["position"] == 3
    values = row["values"]
    assert values[ids["Company"]] == "Hooli"
    assert values[ids["Employees"]] == 1250 and isinstance(values[ids["Employees"]], int)
    assert values[ids["Revenue"]] == 1250.5
    assert values[ids["Growth"]] == 12.5
    assert values[ids["Founded"]] == "2014-03-01"
    assert values[ids["Last contact"]] == "2026-11-20T08:30:00+00:00"
    assert values[ids["Active"]] is True
    assert values[ids["Stage"]] == "Customer"
    assert values[ids["Tags"]] == ["Lead", "Churned"]
    assert values[ids["Email"]] == "Gavin@hooli.com"
    assert values[ids["Website"]] == "https://hooli.com/about"
    assert values[ids["Domain"]] == "hooli.com"
    assert values[ids["Payload"]] == {"funding": [1, 2.5, None], "ok": True}
    assert values[ids["Phone"]] == "+1 555 0100"
    assert values[ids["Notes"]] is None
    assert client.get(f"{base}/{row['id']}", headers=headers["viewer"]).get_json()["data"] == row

    resp = client.patch(f"{base}/{row['id']}", json={"employees": "2,000", "Notes": "Big"}, headers=headers["member"])
    assert resp.status_code == 200
    assert resp.get_json()["data"]["values"][ids["Employees"]] == 2000
    assert resp.get_json()["data"]["values"][ids["Notes"]] == "Big"
    assert resp.get_json()["data"]["values"][ids["Company"]] == "Hooli"

    resp = client.patch(f"{base}/{row['id']}", json={"Employees": 3, "Founded": "soon"}, headers=headers["member"])
    assert resp.status_code == 422
    assert set(resp.get_json()["error"]["fields"]) == {"Founded"}
    stored = client.get(f"{base}/{row['id']}", headers=headers["viewer"]).get_json()["data"]["values"]
    assert stored[ids["Employees"]] == 2000, "a refused PATCH changed nothing"

    assert client.delete(f"{base}/{row['id']}", headers=headers["member"]).status_code == 200
    assert client.get(f"{base}/{row['id']}", headers=headers["viewer"]).status_code == 404
    assert client.delete(f"{base}/{row['id']}", headers=headers["member"]).status_code == 404
    assert len(_db_rows(db, table)) == 3


def test_bad_cells_name_every_field_and_nothing_is_written(client, db, team, headers, table):
    base = f"/api/v1/tables/{table.id}/rows"
    before = _db_rows(db, table)
    resp = client.post(
        base,
        json={"Employees": "many", "Nope": 1, "Stage": "Partner", "Company": "Fine"},
        headers=headers["member"],
    )
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert set(error["fields"]) == {"Employees", "Nope", "Stage"}
    assert "not a number" in error["fields"]["Employees"][0]
    assert "No column" in error["fields"]["Nope"][0]
    assert "3 cells could not be saved" in error["message"]
    rows = [{"Company": f"Co {i}", "Employees": i} for i in range(20)]
    rows[4]["Employees"] = "four"
    rows[17]["Founded"] = "2026-02-30"
    resp = client.post(f"{base}/bulk", json={"rows": rows}, headers=headers["member"])
    assert resp.status_code == 422
    assert set(resp.get_json()["error"]["fields"]) == {"rows[4].Employees", "rows[17].Founded"}
    row_id = before[0][0]
    resp = client.patch(f"{base}/{row_id}", json={"Company": "Changed", "Active": "perhaps"}, headers=headers["member"])
    assert resp.status_code == 422 and set(resp.get_json()["error"]["fields"]) == {"Active"}
    resp = client.post(base, json={"Company": "Twice", "company": "Again"}, headers=headers["member"])
    assert resp.status_code == 422 and "given twice" in resp.get_json()["error"]["fields"]["company"][0]
    assert _db_rows(db, table) == before
    formula = service.add_column(team.workspace, team.owner, table, "Score", "formula", config={"expression": "1 + 1"})
    db.session.flush()
    resp = client.post(base, json={str(formula.id): "=1"}, headers=headers["member"])
    assert resp.status_code == 422 and "computed" in resp.get_json()["error"]["fields"][str(formula.id)][0]
    assert len(_db_rows(db, table)) == len(before)


def test_bulk_create_takes_1000_rows_and_refuses_1001(client, db, headers, table):
    base = f"/api/v1/tables/{table.id}/rows/bulk"
    rows = [{"Company": f"Company {i}", "Employees": i, "Active": i % 2 == 0} for i in range(1000)]
    resp = client.post(base, json={"rows": rows}, headers=headers["member"])
    assert resp.status_code == 201, resp.get_json()
    data = resp.get_json()["data"]
    assert data["count"] == 1000 and len(data["ids"]) == 1000
    stored = _db_rows(db, table)
    assert len(stored) == 1003
    assert [r[0] for r in stored[3:]] == data["ids"]
    assert [(r[1], r[3]) for r in stored[3:6]] == [
        ("Company 0", Decimal(0)),
        ("Company 1", Decimal(1)),
        (
            "Company 2",
            Decimal(2),
        ),
    ]
    resp = client.post(base, json={"rows": rows + [{"Company": "One too many"}]}, headers=headers["member"])
    assert resp.status_code == 422
    error = resp.get_json()["error"]
    assert "rows" in error["fields"] and "1000" in error["fields"]["rows"][0]
    assert len(_db_rows(db, table)) == 1003
    assert client.post(base, json={"rows": []}, headers=headers["member"]).status_code == 422
    big = [{"Notes": "x" * 2000} for _ in range(600)]
    resp = client.post(base, json={"rows": big}, headers=headers["member"])
    assert resp.status_code == 413 and resp.get_json()["error"]["code"] == "payload_too_large"


def test_window_and_cursor_pages_return_exactly_the_database_rows_in_order(client, db, team, headers):
    table = service.create_table(team.workspace, team.owner, "Big", columns=[{"name": "N", "type": "number"}])
    seed_rows(team.workspace, team.owner, table, 1234, seed=3)
    stored = _db_rows(db, table)
    n_id = str(table.live_columns[0].id)
    base = f"/api/v1/tables/{table.id}/rows"

    seen = []
    after = None
    pages = 0
    while True:
        url = f"{base}?limit=500" + (f"&after={after}" if after is not None else "")
        body = client.get(url, headers=headers["viewer"]).get_json()
        pages += 1
        seen.extend((r["id"], r["values"][n_id], r["position"]) for r in body["data"])
        after = body["meta"]["pagination"]["next_cursor"]
        assert body["meta"]["pagination"]["total"] == 1234
        if after is None:
            break
    assert pages == 3
    assert [(i, v) for i, v, _ in seen] == [(r[0], int(r[1])) for r in stored]
    assert [p for _, _, p in seen] == list(range(1234))

    body = client.get(f"{base}?start=1000&limit=300", headers=headers["viewer"]).get_json()
    assert [r["id"] for r in body["data"]] == [r[0] for r in stored[1000:1234]]
    assert body["meta"]["pagination"] == {"total": 1234, "start": 1000, "limit": 300, "next_cursor": None}
    body = client.get(f"{base}?start=10&limit=5", headers=headers["viewer"]).get_json()
    assert [r["id"] for r in body["data"]] == [r[0] for r in stored[10:15]]
    assert body["meta"]["pagination"]["next_cursor"] == 14
    body = client.get(f"{base}?after=14&limit=5", headers=headers["viewer"]).get_json()
    assert [r["id"] for r in body["data"]] == [r[0] for r in stored[15:20]]
    assert client.get(f"{base}?start=5000", headers=headers["viewer"]).get_json()["data"] == []

    for query, field in (
        ("limit=501", "limit"),
        ("limit=0", "limit"),
        ("start=-1", "start"),
        ("start=abc", "start"),
        ("start=1&after=2", "body"),
        ("colour=red", "colour"),
    ):
        resp = client.get(f"{base}?{query}", headers=headers["viewer"])
        assert resp.status_code == 422, query
        assert field in resp.get_json()["error"]["fields"], (query, resp.get_json())


# --- tenant isolation ------------------------------------------------------------------------------


def test_another_workspace_gets_404_for_every_table_object(client, db, team, other_team, headers, table):
    outsider = _headers(other_team, "owner")
    own = headers["owner"]
    base = f"/api/v1/tables/{table.id}"
    column_id = _column_id(table, "Company")
    row_id = _db_rows(db, table)[0][0]
    view_id = service.list_views(team.workspace, table)[0].id
    # Workspace B's own table, to address A's columns, rows and views through it too.
    theirs = service.create_table(other_team.workspace, other_team.owner, "Theirs", columns=[{"name": "Company"}])
    db.session.flush()
    mine_through_theirs = f"/api/v1/tables/{theirs.id}"
    requests = []
    for prefix in (base, mine_through_theirs):
        requests += [
            ("patch", f"{prefix}/columns/{column_id}", {"name": "Stolen"}),
            ("delete", f"{prefix}/columns/{column_id}", None),
            ("get", f"{prefix}/rows/{row_id}", None),
            ("patch", f"{prefix}/rows/{row_id}", {"Company": "Stolen"}),
            ("delete", f"{prefix}/rows/{row_id}", None),
            ("get", f"{prefix}/rows?view={view_id}", None),
            ("patch", f"{prefix}/views/{view_id}", {"name": "Stolen"}),
            ("delete", f"{prefix}/views/{view_id}", None),
        ]
    requests += [
        ("get", base, None),
        ("patch", base, {"name": "Stolen"}),
        ("get", f"{base}/columns", None),
        ("post", f"{base}/columns", {"name": "Stolen"}),
        ("get", f"{base}/rows", None),
        ("post", f"{base}/rows", {"Company": "Stolen"}),
        ("post", f"{base}/rows/bulk", {"rows": [{"Company": "Stolen"}]}),
        ("get", f"{base}/views", None),
        ("post", f"{base}/views", {"name": "Stolen"}),
        ("delete", base, None),
    ]
    for method, path, body in requests:
        resp = getattr(client, method)(path, json=body, headers=outsider)
        assert resp.status_code == 404, (method, path, resp.status_code, resp.get_json())
        assert resp.get_json()["error"]["code"] == "not_found"
    assert [t["name"] for t in client.get("/api/v1/tables", headers=outsider).get_json()["data"]] == ["Theirs"]
    data = client.get(base, headers=own).get_json()["data"]
    assert data["name"] == "Accounts" and [c["name"] for c in data["columns"]] == [c["name"] for c in ALL_COLUMNS]
    assert [r[1] for r in _db_rows(db, table)] == ["Acme", "Globex", "Initech"]
    assert [v["name"] for v in client.get(f"{base}/views", headers=own).get_json()["data"]] == ["Grid view"]


def test_api_key_of_a_member_writes_rows(client, db, team, headers, table):
    resp = client.post("/api/v1/api-keys", json={"name": "Loader", "role": "member"}, headers=headers["owner"])
    key = bearer(resp.get_json()["data"]["key"])
    resp = client.post(f"/api/v1/tables/{table.id}/rows", json={"Company": "Keyed"}, headers=key)
    assert resp.status_code == 201
    assert _db_rows(db, table)[-1][1] == "Keyed"


# --- properties over every column type -------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=30).filter(
    lambda s: s.strip() == s and s
)
_decimals = st.decimals(min_value=-(10**12), max_value=10**12, places=2, allow_nan=False, allow_infinity=False)
GOOD = {
    "Company": _text,
    "Notes": _text,
    "Employees": st.integers(-(10**15), 10**15),
    "Revenue": _decimals.map(lambda d: float(d) if d != d.to_integral_value() else int(d)),
    "Growth": st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: round(f, 4)),
    "Founded": st.dates(date(1, 1, 1), date(9999, 12, 31)).map(date.isoformat),
    "Last contact": st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1), timezones=st.just(UTC)).map(
        lambda d: d.replace(microsecond=0).isoformat()
    ),
    "Active": st.booleans(),
    "Stage": st.sampled_from(SELECT_OPTIONS),
    "Tags": st.lists(st.sampled_from(SELECT_OPTIONS), min_size=1, max_size=3, unique=True),
    "Email": st.from_regex(r"[a-z]{1,10}@[a-z]{1,10}\.(com|io|org)", fullmatch=True),
    "Website": st.from_regex(r"https://[a-z]{1,10}\.(com|io)/[a-z0-9]{0,8}", fullmatch=True),
    "Phone": st.from_regex(r"\+1 555 [0-9]{7}", fullmatch=True),
    "Domain": st.from_regex(r"[a-z]{1,10}\.(com|io|org)", fullmatch=True),
    "Payload": st.recursive(
        st.none() | st.booleans() | st.integers(-(10**9), 10**9) | _text,
        lambda children: st.lists(children, max_size=3) | st.dictionaries(_text, children, max_size=3),
        max_leaves=6,
    ).filter(lambda v: v is not None),
}
BAD = {
    "Employees": st.sampled_from(["many", "1.2.3", "1e999", True, [1], {"n": 1}]),
    "Revenue": st.sampled_from(["lots", "€", False]),
    "Growth": st.sampled_from(["fast", "%%", [2]]),
    "Founded": st.sampled_from(["2026-02-30", "yesterday", 20260101, "2026-13-01"]),
    "Last contact": st.sampled_from(["not a time", 5, "2026-11-20T25:00"]),
    "Active": st.sampled_from(["maybe", 2, [True]]),
    "Stage": st.sampled_from(["Partner", 1, ["Lead"]]),
    "Tags": st.sampled_from([["Partner"], 7, [["Lead"]]]),
    "Email": st.sampled_from(["not-an-email", "a@b", "@acme.com"]),
    "Website": st.sampled_from(["ftp://acme.com", "not a url", "https://user:pw@acme.com"]),
    "Phone": st.sampled_from(["call me", "12", "+1 555 abc"]),
    "Domain": st.sampled_from(["localhost", "not a domain", "http://"]),
    "Company": st.sampled_from(["nul\x00byte", {"not": "text"}, ["a"]]),
    "Payload": st.sampled_from([{"key\x00": 1}, "nul\x00", [float("inf")]]),
}


def _expected(name: str, value):
    """What the API gives back for a good value sent to column ``name``."""
    if name == "Last contact":
        return datetime.fromisoformat(value).astimezone(UTC).isoformat()
    if name == "Growth" and value == int(value):
        return int(value)
    return value


@pytest.mark.parametrize("kind", ["good", "mixed"])
def test_row_payloads_for_every_column_type(client, db, headers, table, kind):
    ids = {c.name: str(c.id) for c in table.live_columns}
    base = f"/api/v1/tables/{table.id}/rows"
    names = sorted(GOOD)
    good_rows = st.fixed_dictionaries({}, optional={n: GOOD[n] for n in names}).filter(bool)
    bad_cells = st.dictionaries(st.sampled_from(sorted(BAD)), st.none(), min_size=1, max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({k: BAD[k] for k in keys})
    )

    @settings(THROUGH_THE_APP, max_examples=100)
    @given(good=good_rows, bad=bad_cells if kind == "mixed" else st.just({}), via_id=st.booleans())
    def check(good, bad, via_id):
        clear_rate_limits()
        payload = {(ids[k] if via_id else k): v for k, v in good.items()}
        payload.update(bad)
        count_before = len(_db_rows(db, table))
        resp = client.post(base, json=payload, headers=headers["member"])
        assert resp.status_code < 500, resp.get_data(as_text=True)[:300]
        if bad:
            assert resp.status_code == 422, (payload, resp.get_json())
            assert set(resp.get_json()["error"]["fields"]) == set(bad)
            assert len(_db_rows(db, table)) == count_before
            return
        assert resp.status_code == 201, (payload, resp.get_json())
        row = resp.get_json()["data"]
        fetched = client.get(f"{base}/{row['id']}", headers=headers["viewer"]).get_json()["data"]
        assert fetched == row
        for name, value in good.items():
            assert row["values"][ids[name]] == _expected(name, value), name
        patched = client.patch(f"{base}/{row['id']}", json=payload, headers=headers["member"])
        assert patched.status_code == 200 and patched.get_json()["data"] == row

    check()
