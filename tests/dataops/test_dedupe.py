"""Dedupe: groups found in SQL match an independent Python grouping; merges keep, fill and undo exactly."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morket.core.errors import Conflict, ValidationFailed
from morket.core.roles import VIEWER
from morket.dataops import dedupe
from morket.dataops.models import DataRun
from morket.extensions import db as database
from morket.tables import service as tables
from morket.tables import storage, undo
from tests.factories import MembershipFactory, csrf_token, login

# --- an independent model of the normalisation rules, over ASCII -------------------------------------


def _norm(kind: str, value: str | None) -> str:
    if value is None:
        return ""
    text = value.strip(" ")
    if kind == "email":
        return text.lower()
    if kind == "domain":
        bare = re.sub(r"^[a-z][a-z0-9+.-]*://", "", text.lower(), count=1)
        return re.sub(r"^www\.|[/:?#].*\Z", "", bare, flags=re.DOTALL)
    if kind == "url":
        bare = re.sub(r"^[a-z][a-z0-9+.-]*://(www\.)?", "", text.lower(), count=1)
        return re.sub(r"/+\Z", "", bare)
    if kind == "phone":
        return re.sub(r"[^0-9]", "", text)
    return re.sub(r"[ \t\n\r\f\v]+", " ", text).lower()


def _expected_groups(rows: list[tuple[int, tuple]], key: list[tuple[int, str]]) -> list[list[int]]:
    """Group row ids (given in table order) by their normalised key; groups of 2+ in first-row order."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for row_id, cells in rows:
        normalised = tuple(_norm(kind, cells[index]) for index, kind in key)
        if any(normalised):
            groups.setdefault(normalised, []).append(row_id)
    return [ids for ids in groups.values() if len(ids) > 1]


def _spaced(draw_value):
    """Wrap a strategy of values with the mess people type: case, outer and inner spaces."""
    return st.tuples(draw_value, st.sampled_from(["", " ", "  "]), st.sampled_from(["", " ", "\t"]), st.booleans()).map(
        lambda t: t[1] + (t[0].upper() if t[3] else t[0]) + t[2]
    )


_EMAILS = _spaced(st.sampled_from(["ann@acme.com", "Ann@ACME.com", "bob@beta.io", "b.ob@beta.io", "x@y.z"]))
_DOMAINS = _spaced(
    st.tuples(
        st.sampled_from(["", "http://", "https://", "HTTPS://", "ftp://"]),
        st.sampled_from(["", "www.", "WWW."]),
        st.sampled_from(["acme.com", "beta.io", "www.io"]),
        st.sampled_from(["", "/", "//", "/about", ":8080", "?q=1", "#top"]),
    ).map("".join)
)
_PHONES = _spaced(
    st.tuples(
        st.sampled_from(["", "+1 ", "+1-", "(1) "]),
        st.sampled_from(["555 0100", "555-0100", "5550100", "555.0101", "555 01 00"]),
    ).map("".join)
)
_FREE = st.text(alphabet="aAbB .-/@:\t", max_size=6)
_CELL = st.one_of(st.none(), _FREE)


@pytest.fixture
def messy_table(db, owner):
    workspace, user = owner
    table = tables.create_table(
        workspace,
        user,
        "Messy",
        columns=[
            {"name": "Email", "type": "text"},
            {"name": "Site", "type": "text"},
            {"name": "Phone", "type": "text"},
        ],
    )
    return workspace, user, table


def _stored_rows(table) -> list[tuple[int, tuple]]:
    store = storage.storage_for(table)
    found = sa.select(store.rows.c.id, *store.columns.values()).order_by(store.rows.c.pos)
    return [(r[0], tuple(r[1:])) for r in database.session.execute(found)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.one_of(_EMAILS, _CELL), st.one_of(_DOMAINS, _CELL), st.one_of(_PHONES, _CELL)), max_size=30
    ),
    picked=st.sets(st.sampled_from([0, 1, 2]), min_size=1),
    site_kind=st.sampled_from(["domain", "url", "text"]),
    email_kind=st.sampled_from(["email", "text"]),
)
def test_duplicates_are_exactly_the_python_grouping(db, messy_table, monkeypatch, rows, picked, site_kind, email_kind):
    workspace, user, table = messy_table
    monkeypatch.setattr(dedupe, "GROUPS_PER_PAGE", 3)
    existing = [row_id for row_id, _ in _stored_rows(table)]
    if existing:
        tables.delete_rows(workspace, user, table, existing)
    if rows:
        tables.insert_rows(
            workspace, user, table, [dict(zip(("Email", "Site", "Phone"), r, strict=True)) for r in rows]
        )
    kinds_by_index = {0: email_kind, 1: site_kind, 2: "phone"}
    columns = table.live_columns
    parts = dedupe.dedupe_key(
        table, [columns[i].id for i in sorted(picked)], {columns[i].id: kinds_by_index[i] for i in range(3)}
    )

    expected = _expected_groups(_stored_rows(table), [(i, kinds_by_index[i]) for i in sorted(picked)])
    found: list[list[int]] = []
    page = dedupe.find_duplicates(workspace, user, table, parts, page=1)
    while True:
        found.extend([row.id for row in group] for group in page.groups)
        if page.page >= page.pages:
            break
        page = dedupe.find_duplicates(workspace, user, table, parts, page=page.page + 1)

    assert found == expected
    assert page.group_count == len(expected)
    assert page.row_count == sum(len(g) for g in expected)


# --- merging -------------------------------------------------------------------------------------------


@pytest.fixture
def people(db, owner):
    workspace, user = owner
    table = tables.create_table(
        workspace,
        user,
        "People",
        columns=[
            {"name": "Name", "type": "text"},
            {"name": "Email", "type": "email"},
            {"name": "Phone", "type": "phone"},
            {"name": "Company", "type": "text"},
        ],
    )
    ids = tables.insert_rows(
        workspace,
        user,
        table,
        [
            {"Name": "Ada", "Email": "ada@acme.com"},
            {"Name": "Bob", "Email": "bob@beta.io", "Phone": "555 0101"},
            {"Email": " ADA@ACME.COM ", "Phone": "+1 555 0100", "Company": "Acme"},
            {"Name": "Ada Lovelace", "Email": "Ada@acme.com", "Company": "Acme Labs"},
            {"Name": "Cy", "Email": None},
            {"Name": "Dee", "Email": None},
        ],
    )
    return workspace, user, table, ids


def _by_id(table) -> dict[int, dict[str, object]]:
    names = [c.name for c in table.live_columns]
    return {row_id: dict(zip(names, cells, strict=True)) for row_id, cells in _stored_rows(table)}


def _email_key(table):
    email = next(c for c in table.live_columns if c.name == "Email")
    return dedupe.dedupe_key(table, [email.id])


def test_find_groups_by_normalised_email_and_ignore_blank_keys(people):
    workspace, user, table, ids = people
    page = dedupe.find_duplicates(workspace, user, table, _email_key(table))
    assert [[r.id for r in g] for g in page.groups] == [[ids[0], ids[2], ids[3]]]
    assert (page.group_count, page.row_count) == (1, 3)
    assert [r.position for r in page.groups[0]] == [0, 2, 3]
    assert [r.filled for r in page.groups[0]] == [2, 3, 3]


@pytest.mark.parametrize(
    ("keep", "chosen", "kept", "expected"),
    [
        ("first", [], 0, {"Name": "Ada", "Email": "ada@acme.com", "Phone": "+1 555 0100", "Company": "Acme"}),
        ("complete", [], 2, {"Name": "Ada", "Email": "ADA@acme.com", "Phone": "+1 555 0100", "Company": "Acme"}),
        (
            "first",
            [3],
            3,
            {"Name": "Ada Lovelace", "Email": "Ada@acme.com", "Phone": "+1 555 0100", "Company": "Acme Labs"},
        ),
    ],
)
def test_merge_keeps_the_right_row_fills_its_gaps_and_undo_restores_the_table(db, people, keep, chosen, kept, expected):
    workspace, user, table, ids = people
    before = _stored_rows(table)
    result = dedupe.merge_duplicates(
        workspace, user, table, _email_key(table), keep=keep, chosen=[ids[i] for i in chosen]
    )

    after = _by_id(table)
    gone = {ids[0], ids[2], ids[3]} - {ids[kept]}
    assert set(after) == set(ids) - gone
    assert after[ids[kept]] == expected
    assert after[ids[1]]["Name"] == "Bob"
    assert (result.groups, result.deleted) == (1, 2)
    assert table.row_count == 4
    run = db.session.get(DataRun, result.run.id)
    assert (run.kind, run.status, run.rows_in, run.rows_out, run.table_id) == ("dedupe", "done", 6, 4, table.id)
    assert "2 rows deleted" in run.message

    undo.undo_last(workspace, user, table)
    assert _stored_rows(table) == before
    assert table.row_count == 6
    assert [r.id for r in tables.read_window(workspace, user, table, None, 0, 10)] == ids

    undo.redo_next(workspace, user, table)
    assert _by_id(table)[ids[kept]] == expected
    assert len(_stored_rows(table)) == 4


def test_merge_refuses_stale_choices_and_two_picks_in_a_group(db, people):
    workspace, user, table, ids = people
    with pytest.raises(ValidationFailed, match="one row to keep"):
        dedupe.merge_duplicates(workspace, user, table, _email_key(table), chosen=[ids[0], ids[3]])
    with pytest.raises(Conflict, match="changed since"):
        dedupe.merge_duplicates(workspace, user, table, _email_key(table), chosen=[ids[1]])
    name = next(c for c in table.live_columns if c.name == "Name")
    with pytest.raises(Conflict, match="no duplicates"):
        dedupe.merge_duplicates(workspace, user, table, dedupe.dedupe_key(table, [name.id]))
    with pytest.raises(ValidationFailed, match="Pick 1 to"):
        dedupe.dedupe_key(table, [])
    with pytest.raises(ValidationFailed, match="Compare"):
        dedupe.dedupe_key(table, [name.id], {name.id: "soundex"})
    assert len(_stored_rows(table)) == 6


def test_merge_in_a_view_sorted_on_a_merged_column_keeps_the_view_right(db, people):
    workspace, user, table, ids = people
    name = next(c for c in table.live_columns if c.name == "Name")
    view = tables.create_view(workspace, user, table, "By name", sort=[{"column_id": name.id, "dir": "asc"}])
    tables.read_window(workspace, user, table, view, 0, 10)
    dedupe.merge_duplicates(workspace, user, table, _email_key(table))
    shown = [r.values(table)[name.id] for r in tables.read_window(workspace, user, table, view, 0, 10)]
    assert shown == ["Ada", "Bob", "Cy", "Dee"]


# --- pages -------------------------------------------------------------------------------------------


def test_pages_preview_groups_and_merge_as_one_undo_step(client, db, people):
    workspace, user, table, ids = people
    login(client, user)
    email = next(c for c in table.live_columns if c.name == "Email")
    url = f"/w/{workspace.slug}/tables/{table.id}/dedupe"
    empty = client.get(url).get_data(as_text=True)
    assert "Compare rows on" in empty and "Find duplicates" in empty
    grid = client.get(f"/w/{workspace.slug}/tables/{table.id}").get_data(as_text=True)
    assert url in grid

    page = client.get(url, query_string={"col": email.id})
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "1 group of duplicates (3 rows)" in body
    assert "empty cells are filled from the other rows" in body
    assert f'id="dedupe-group-{ids[0]}"' in body

    token = csrf_token(client, url)
    resp = client.post(
        url,
        data={
            "csrf_token": token,
            "col": email.id,
            f"match_{email.id}": "email",
            "keep": "first",
            f"keep_row_{ids[0]}": ids[3],
        },
    )
    assert resp.status_code == 302
    followed = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Merged 1 group of duplicates: 2 rows deleted" in followed
    assert "No duplicates" in followed
    assert set(_by_id(table)) == {ids[1], ids[3], ids[4], ids[5]}
    assert undo.undo_depth(workspace, user, table) == (1, 0)
    records = client.get(f"/w/{workspace.slug}/imports").get_data(as_text=True)
    assert "Dedupe" in records


def test_bad_input_is_a_clear_error_never_a_500(client, db, people):
    workspace, user, table, _ = people
    login(client, user)
    url = f"/w/{workspace.slug}/tables/{table.id}/dedupe"
    resp = client.get(url, query_string={"col": "999999"})
    assert resp.status_code == 422
    assert "Pick columns of this table" in resp.get_data(as_text=True)
    token = csrf_token(client, url)
    resp = client.post(url, data={"csrf_token": token})
    assert resp.status_code == 422
    assert "Pick the columns to compare" in resp.get_data(as_text=True)


def test_viewers_get_403_and_other_workspaces_404(client, new_client, db, people, stranger):
    workspace, user, table, _ = people
    viewer = MembershipFactory(workspace=workspace, role=VIEWER).user
    login(client, viewer)
    url = f"/w/{workspace.slug}/tables/{table.id}/dedupe"
    assert client.get(url).status_code == 403
    assert "Find duplicates" not in client.get(f"/w/{workspace.slug}/tables/{table.id}").get_data(as_text=True)

    other_workspace, other_owner = stranger
    outsider = new_client()
    login(outsider, other_owner)
    assert outsider.get(url).status_code == 404
    assert outsider.get(f"/w/{other_workspace.slug}/tables/{table.id}/dedupe").status_code == 404
    token = csrf_token(outsider, f"/w/{other_workspace.slug}/imports")
    assert (
        outsider.post(f"/w/{other_workspace.slug}/tables/{table.id}/dedupe", data={"csrf_token": token}).status_code
        == 404
    )
    assert len(_stored_rows(table)) == 6
