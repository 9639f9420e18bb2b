"""Lookup columns through the JSON API and the grid's column endpoints: roles, tenants, errors, preview."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from morket.api.tokens import encode_access_token
from morket.extensions import db as _db
from morket.tables import service, storage
from tests.api.conftest import bearer, make_team
from tests.factories import csrf_token, login, workspace_with_owner

pytestmark = pytest.mark.usefixtures("db")


def _col(table, name: str) -> int:
    return next(c.id for c in table.live_columns if c.name == name)


def _cells(table, column_id: int) -> list:
    store = storage.storage_for(table)
    return [r[0] for r in _db.session.execute(sa.select(store.columns[column_id]).order_by(store.rows.c.pos))]


@pytest.fixture
def team(db):
    return make_team()


@pytest.fixture
def headers(team):
    return {
        role: bearer(encode_access_token(getattr(team, role).id, team.workspace.id, role))
        for role in ("owner", "member", "viewer")
    }


@pytest.fixture
def tables(db, team):
    workspace, owner = team.workspace, team.owner
    companies = service.create_table(
        workspace, owner, "Companies", columns=[{"name": "Domain", "type": "domain"}, {"name": "Name", "type": "text"}]
    )
    service.insert_rows(
        workspace,
        owner,
        companies,
        [{"Domain": "acme.com", "Name": "Acme"}, {"Domain": "globex.com", "Name": "Globex"}],
    )
    people = service.create_table(workspace, owner, "People", columns=[{"name": "Website", "type": "url"}])
    service.insert_rows(workspace, owner, people, [{"Website": "https://www.acme.com/x"}, {"Website": "nothing.org"}])
    db.session.flush()
    return people, companies


def _config(people, companies, **extra):
    return {
        "source_table_id": companies.id,
        "source_key_column_id": _col(companies, "Domain"),
        "key_column_id": _col(people, "Website"),
        "field_column_id": _col(companies, "Name"),
        "mode": "first",
        **extra,
    }


def test_api_creates_reads_updates_and_deletes_a_lookup(client, db, headers, tables):
    people, companies = tables
    base = f"/api/v1/tables/{people.id}/columns"
    resp = client.post(
        base,
        json={"name": "Company", "type": "lookup", "config": _config(people, companies)},
        headers=headers["member"],
    )
    assert resp.status_code == 201, resp.get_json()
    column = resp.get_json()["data"]
    assert column["config"]["mode"] == "first" and column["config"]["match"] == "domain"
    rows = client.get(f"/api/v1/tables/{people.id}/rows", headers=headers["viewer"]).get_json()["data"]
    assert [r["values"][str(column["id"])] for r in rows] == ["Acme", None]
    resp = client.patch(
        f"{base}/{column['id']}", json={"config": _config(people, companies, mode="count")}, headers=headers["member"]
    )
    assert resp.status_code == 200 and resp.get_json()["data"]["config"]["mode"] == "count"
    db.session.expire_all()
    assert _cells(people, column["id"]) == ["1", "0"]
    # an API write to the other table recomputes the lookup by the changed key
    rows_b = client.get(f"/api/v1/tables/{companies.id}/rows", headers=headers["viewer"]).get_json()["data"]
    resp = client.patch(
        f"/api/v1/tables/{companies.id}/rows/{rows_b[1]['id']}",
        json={"Domain": "nothing.org"},
        headers=headers["member"],
    )
    assert resp.status_code == 200
    db.session.expire_all()
    assert _cells(people, column["id"]) == ["1", "1"]
    assert client.delete(f"{base}/{column['id']}", headers=headers["member"]).status_code == 200


def test_api_refuses_bad_settings_with_the_envelope(client, headers, tables):
    people, companies = tables
    base = f"/api/v1/tables/{people.id}/columns"
    for config, field in (
        ({**_config(people, companies), "mode": "sideways"}, "mode"),
        ({**_config(people, companies), "source_key_column_id": 999999}, "source_key_column_id"),
        ({k: v for k, v in _config(people, companies).items() if k != "source_table_id"}, "source_table_id"),
    ):
        resp = client.post(base, json={"name": "X", "type": "lookup", "config": config}, headers=headers["member"])
        assert resp.status_code == 422, resp.get_json()
        assert field in resp.get_json()["error"]["fields"]
    resp = client.patch(
        f"{base}/{_col(people, 'Website')}", json={"config": {"mode": "count"}}, headers=headers["member"]
    )
    assert resp.status_code == 422
    names = [c["name"] for c in client.get(base, headers=headers["viewer"]).get_json()["data"]]
    assert names == ["Website"]


def test_viewer_cannot_create_a_lookup(client, headers, tables):
    people, companies = tables
    resp = client.post(
        f"/api/v1/tables/{people.id}/columns",
        json={"name": "Company", "type": "lookup", "config": _config(people, companies)},
        headers=headers["viewer"],
    )
    assert resp.status_code == 403


def test_a_lookup_cannot_read_another_workspaces_table(client, db, headers, tables):
    people, companies = tables
    other = make_team()
    secret = service.create_table(
        other.workspace,
        other.owner,
        "Secret",
        columns=[{"name": "Domain", "type": "domain"}, {"name": "Deal", "type": "text"}],
    )
    service.insert_rows(other.workspace, other.owner, secret, [{"Domain": "acme.com", "Deal": "$1M"}])
    db.session.flush()
    config = {
        "source_table_id": secret.id,
        "source_key_column_id": _col(secret, "Domain"),
        "key_column_id": _col(people, "Website"),
        "field_column_id": _col(secret, "Deal"),
        "mode": "first",
    }
    resp = client.post(
        f"/api/v1/tables/{people.id}/columns",
        json={"name": "Deal", "type": "lookup", "config": config},
        headers=headers["owner"],
    )
    assert resp.status_code == 422 and "$1M" not in resp.get_data(as_text=True)
    assert "source_table_id" in resp.get_json()["error"]["fields"]


def test_deleting_the_source_table_shows_the_error_not_a_500(client, db, team, headers, tables):
    people, companies = tables
    base = f"/api/v1/tables/{people.id}/columns"
    column = client.post(
        base,
        json={"name": "Company", "type": "lookup", "config": _config(people, companies)},
        headers=headers["member"],
    ).get_json()["data"]
    assert client.delete(f"/api/v1/tables/{companies.id}", headers=headers["owner"]).status_code == 200
    listed = client.get(base, headers=headers["viewer"]).get_json()["data"]
    assert (
        next(c for c in listed if c["id"] == column["id"])["config"]["error"]
        == "The table this lookup reads was deleted."
    )
    login(client, team.owner)
    page = client.get(f"/w/{team.workspace.slug}/tables/{people.id}")
    assert page.status_code == 200 and "The table this lookup reads was deleted." in page.get_data(as_text=True)
    rows = client.get(f"/w/{team.workspace.slug}/tables/{people.id}/rows?start=0&limit=10")
    assert rows.status_code == 200


# --- the grid's column endpoints ---------------------------------------------------------------------


def _page(workspace, table, tail=""):
    return f"/w/{workspace.slug}/tables/{table.id}/columns{tail}"


def test_add_a_lookup_through_the_form_with_a_preview(client, db, team, tables):
    people, companies = tables
    workspace = team.workspace
    login(client, team.member)
    form = client.get(_page(workspace, people, "/new"))
    assert form.status_code == 200 and "Look up in" in form.get_data(as_text=True)
    config = {k: str(v) for k, v in _config(people, companies).items()}
    fields = client.get(_page(workspace, people, "/lookup-fields"), query_string={"source_table_id": companies.id})
    assert fields.status_code == 200 and "Domain" in fields.get_data(as_text=True)
    preview = client.get(_page(workspace, people, "/lookup-preview"), query_string=config)
    text = preview.get_data(as_text=True)
    assert preview.status_code == 200 and "Acme" in text and "no match" in text
    bad = client.get(_page(workspace, people, "/lookup-preview"), query_string={**config, "mode": "nope"})
    assert "Mode is first, joined or count." in bad.get_data(as_text=True)
    token = csrf_token(client, _page(workspace, people, "/new"))
    resp = client.post(
        _page(workspace, people),
        data={"csrf_token": token, "name": "Company", "type": "lookup", **config},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 204, resp.get_data(as_text=True)
    db.session.expire_all()
    people = service.get_table_or_404(workspace, people.id)
    column = next(c for c in people.live_columns if c.name == "Company")
    assert _cells(people, column.id) == ["Acme", None]
    menu = client.get(_page(workspace, people, f"/{column.id}/menu"))
    assert menu.status_code == 200 and "Save lookup" in menu.get_data(as_text=True)
    resp = client.post(
        _page(workspace, people, f"/{column.id}/lookup"),
        data={"csrf_token": token, **config, "mode": "count"},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 204
    db.session.expire_all()
    assert _cells(people, column.id) == ["1", "0"]


def test_viewers_and_strangers_cannot_reach_the_lookup_endpoints(client, db, team, tables):
    people, companies = tables
    workspace = team.workspace
    config = {k: str(v) for k, v in _config(people, companies).items()}
    login(client, team.viewer)
    assert client.get(_page(workspace, people, "/lookup-preview"), query_string=config).status_code == 403
    assert client.get(_page(workspace, people, "/lookup-fields")).status_code == 403
    other, stranger = workspace_with_owner()
    login(client, stranger)
    assert client.get(_page(workspace, people, "/lookup-preview"), query_string=config).status_code == 404
    # the stranger's own workspace cannot name our tables either
    mine = service.create_table(other, stranger, "Mine", columns=[{"name": "Website", "type": "url"}])
    db.session.flush()
    theirs = {**config, "key_column_id": str(_col(mine, "Website"))}
    resp = client.get(_page(other, mine, "/lookup-preview"), query_string=theirs)
    assert resp.status_code == 200 and "not in this workspace" in resp.get_data(as_text=True)
    assert "Acme" not in resp.get_data(as_text=True)


def test_a_large_lookup_added_in_the_grid_shows_its_job(client, db, team, tables, monkeypatch, run_jobs):
    from morket.tables import lookups

    people, companies = tables
    workspace = team.workspace
    monkeypatch.setattr(lookups, "INLINE_FILL_ROWS", 1)
    login(client, team.member)
    token = csrf_token(client, _page(workspace, people, "/new"))
    config = {k: str(v) for k, v in _config(people, companies).items()}
    resp = client.post(
        _page(workspace, people),
        data={"csrf_token": token, "name": "Company", "type": "lookup", **config},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200 and "Filling the lookup" in resp.get_data(as_text=True)
    assert run_jobs() >= 1
    db.session.expire_all()
    people = service.get_table_or_404(workspace, people.id)
    column = next(c for c in people.live_columns if c.name == "Company")
    assert _cells(people, column.id) == ["Acme", None]


def test_a_count_lookup_shows_numbers_in_the_grid(client, db, team, headers, tables):
    people, companies = tables
    base = f"/api/v1/tables/{people.id}/columns"
    config = {k: v for k, v in _config(people, companies, mode="count").items() if k != "field_column_id"}
    column = client.post(base, json={"name": "Matches", "type": "lookup", "config": config}, headers=headers["member"])
    column_id = column.get_json()["data"]["id"]
    login(client, team.viewer)
    window = client.get(f"/w/{team.workspace.slug}/tables/{people.id}/rows?start=0&limit=10")
    html = window.get_data(as_text=True)
    assert window.status_code == 200
    assert f'is-number" data-col-id="{column_id}"' in html and ">1</div>" in html and ">0</div>" in html
