"""Enrichment in the grid's pages: the setup form, the cells' values and states, the state filter, roles."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from morket.enrichment import columns
from morket.enrichment.schemas import ColumnSetup
from morket.tables import service as tables
from morket.tables import storage
from morket.workspaces.models import Membership
from tests.factories import UserFactory, csrf_token, login, workspace_with_owner

PEOPLE = (
    {"name": "First name", "type": "text"},
    {"name": "Last name", "type": "text"},
    {"name": "Domain", "type": "domain"},
)
CELL = re.compile(
    r'<div class="grid-cell t-enrichment([^"]*)" data-col-id="(\d+)" (?:title="([^"]*)" )?[^>]*>([^<]*)</div>'
)


@pytest.fixture
def people(db):
    workspace, owner = workspace_with_owner()
    table = tables.create_table(workspace, owner, "People", columns=PEOPLE)
    rows = [{"First name": f"P{i}", "Last name": "Doe", "Domain": f"d{i}.io"} for i in range(4)]
    row_ids = tables.insert_rows(workspace, owner, table, rows)
    ids = {c.name: c.id for c in table.live_columns}
    return workspace, owner, table, ids, row_ids


def _member(db, workspace, role: str):
    user = UserFactory()
    db.session.add(Membership(workspace_id=workspace.id, user_id=user.id, role=role))
    db.session.flush()
    return user


def _setup(ids) -> ColumnSetup:
    return ColumnSetup.model_validate(
        {
            "name": "Work email",
            "steps": [{"operation": "hunter.email_finder"}],
            "target": "email",
            "inputs": {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": ids["Domain"]},
        }
    )


def _form(ids: dict[str, int], **extra: str) -> dict[str, str]:
    data = {
        "name": "Work email",
        "step_1": "hunter.email_finder",
        "step_2": "apollo.people_match",
        "target": "email",
        "in_first_name": str(ids["First name"]),
        "in_last_name": str(ids["Last name"]),
        "in_domain": str(ids["Domain"]),
        "validation": "hunter.email_verifier",
        "accept": "valid, accept_all",
        "out_title": "new",
        "outname_title": "Job title",
    }
    data.update(extra)
    return data


def test_setup_page_offers_a_preset_with_inputs_guessed_from_column_names(client, db, people):
    workspace, owner, table, ids, _ = people
    login(client, owner)
    page = client.get(f"/w/{workspace.slug}/tables/{table.id}/enrichment/new?preset=email_waterfall")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert '<option value="hunter.email_finder" selected>' in html
    assert '<option value="apollo.people_match" selected>' in html
    assert '<option value="hunter.email_verifier" selected>' in html
    # First name → first_name, Last name → last_name, Domain → domain.
    for name in ("first_name", "last_name", "domain"):
        block = html.split(f'name="in_{name}"', 1)[1].split("</select>", 1)[0]
        label = {"first_name": "First name", "last_name": "Last name", "domain": "Domain"}[name]
        assert f'<option value="{ids[label]}" selected>{label}</option>' in block


def test_refresh_rerenders_for_the_chosen_steps_without_saving(client, db, people):
    workspace, owner, table, ids, _ = people
    login(client, owner)
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{table.id}/enrichment/new")
    resp = client.post(
        f"/w/{workspace.slug}/tables/{table.id}/enrichment",
        data={"csrf_token": token, "name": "X", "step_1": "hunter.domain_search", "refresh": "1"},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'name="out_pattern"' in html and 'name="in_domain"' in html
    assert 'name="in_first_name"' not in html
    assert [c.name for c in tables.get_table_or_404(workspace, table.id).live_columns] == [
        "First name",
        "Last name",
        "Domain",
    ]


def test_saving_the_form_creates_the_column_and_its_output(client, db, people):
    workspace, owner, table, ids, _ = people
    login(client, owner)
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{table.id}/enrichment/new")
    resp = client.post(f"/w/{workspace.slug}/tables/{table.id}/enrichment", data={"csrf_token": token, **_form(ids)})
    assert resp.status_code == 303
    assert f"/w/{workspace.slug}/tables/{table.id}" in resp.headers["Location"]
    table = tables.get_table_or_404(workspace, table.id)
    column = next(c for c in table.live_columns if c.name == "Work email")
    config = columns.column_config(column)
    assert config.validation.accept == ["valid", "accept_all"]
    assert [s.operation for s in config.steps] == ["hunter.email_finder", "apollo.people_match"]
    assert [c.name for c in table.live_columns][-1] == "Job title"
    # The edit page shows the saved setup.
    page = client.get(f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}").get_data(as_text=True)
    assert 'value="valid, accept_all"' in page and 'value="Work email"' in page


def test_a_bad_form_answers_422_with_the_reason_and_writes_nothing(client, db, people):
    workspace, owner, table, ids, _ = people
    login(client, owner)
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{table.id}/enrichment/new")
    data = {"csrf_token": token, **_form(ids, in_domain="", name="")}
    resp = client.post(f"/w/{workspace.slug}/tables/{table.id}/enrichment", data=data)
    assert resp.status_code == 422
    data = {"csrf_token": token, **_form(ids, in_domain="")}
    resp = client.post(f"/w/{workspace.slug}/tables/{table.id}/enrichment", data=data)
    assert resp.status_code == 422
    assert "needs a column for: Company domain" in resp.get_data(as_text=True)
    data = {"csrf_token": token, **_form(ids, step_1="", step_2="")}
    assert client.post(f"/w/{workspace.slug}/tables/{table.id}/enrichment", data=data).status_code == 422
    data = {"csrf_token": token, **_form(ids, in_domain="abc")}
    assert client.post(f"/w/{workspace.slug}/tables/{table.id}/enrichment", data=data).status_code == 422
    assert len(tables.get_table_or_404(workspace, table.id).live_columns) == 3


def test_viewers_cannot_configure_and_strangers_get_404(client, db, people):
    workspace, owner, table, ids, _ = people
    column = columns.create_enrichment_column(workspace, owner, table, _setup(ids))
    base = f"/w/{workspace.slug}/tables/{table.id}/enrichment"
    login(client, _member(db, workspace, "viewer"))
    token = csrf_token(client, "/w")
    assert client.get(f"{base}/new").status_code == 403
    assert client.post(base, data={"csrf_token": token, **_form(ids)}).status_code == 403
    assert client.get(f"{base}/{column.id}").status_code == 403
    assert client.post(f"{base}/{column.id}", data={"csrf_token": token, **_form(ids)}).status_code == 403
    other, stranger = workspace_with_owner()
    login(client, stranger)
    token = csrf_token(client, "/w")
    for path in (f"{base}/new", f"{base}/{column.id}"):
        assert client.get(path).status_code == 404
    assert client.post(base, data={"csrf_token": token, **_form(ids)}).status_code == 404
    # Their own slug with this table's ids is a 404 too.
    assert client.get(f"/w/{other.slug}/tables/{table.id}/enrichment/{column.id}").status_code == 404
    assert len(tables.get_table_or_404(workspace, table.id).live_columns) == 4


def _write_cells(table, column, row_ids):
    """Write what the engine writes: the JSONB cell and the row's cell state."""
    store = storage.storage_for(table)
    states = [
        ({"value": "p0@d0.io", "provider": "hunter", "fields": {"email": "p0@d0.io"}}, "success", "hunter", None),
        (None, "no_data", None, None),
        (None, "error", "apollo", "HTTP 500 from the provider"),
        (None, "queued", None, None),
    ]
    for row_id, (value, status, provider, message) in zip(row_ids, states, strict=True):
        state = {"status": status, "run_id": 1, **({"provider": provider} if provider else {})}
        if message:
            state["message"] = message
        tables_db = store.rows
        from morket.extensions import db

        db.session.execute(
            sa.update(tables_db)
            .where(tables_db.c.id == row_id)
            .values(
                {
                    store.columns[column.id].name: value,
                    "cell_state": sa.func.coalesce(tables_db.c.cell_state, sa.text("'{}'::jsonb")).op("||")(
                        sa.bindparam(None, {str(column.id): state}, type_=JSONB)
                    ),
                }
            )
        )


def test_grid_shows_the_value_state_and_provider_of_enrichment_cells(client, db, people):
    workspace, owner, table, ids, row_ids = people
    column = columns.create_enrichment_column(workspace, owner, table, _setup(ids))
    _write_cells(table, column, row_ids)
    login(client, _member(db, workspace, "viewer"))
    resp = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows", headers={"HX-Request": "true"})
    cells = {}
    for classes, col, title, text in CELL.findall(resp.get_data(as_text=True)):
        assert int(col) == column.id
        cells[len(cells)] = (classes.strip(), title, text)
    assert cells[0] == ("is-success", "Found · hunter", "p0@d0.io")
    assert cells[1] == ("is-no_data", "No data found", "")
    assert cells[2] == ("is-error", "Error · apollo: HTTP 500 from the provider", "")
    assert cells[3] == ("is-queued", "Queued", "")
    # The editor starts from the whole stored JSON, so saving the cell keeps it.
    html = resp.get_data(as_text=True)
    assert 'data-raw="{&#34;value&#34;: &#34;p0@d0.io&#34;, ' in html and "&#34;provider&#34;: &#34;hunter&#34;" in html
    # The grid page loads the cell-state styles.
    page = client.get(f"/w/{workspace.slug}/tables/{table.id}").get_data(as_text=True)
    assert "css/enrichment.css" in page


def test_views_filter_on_enrichment_state(client, db, people):
    workspace, owner, table, ids, row_ids = people
    column = columns.create_enrichment_column(workspace, owner, table, _setup(ids))
    _write_cells(table, column, row_ids)
    view = tables.list_views(workspace, table)[0]
    for wanted, expected in (("error", [row_ids[2]]), ("No data found", [row_ids[1]]), ("found", [row_ids[0]])):
        filters = {"op": "and", "conditions": [{"column_id": column.id, "operator": "state_is", "value": wanted}]}
        tables.update_view(workspace, owner, table, view, filters=filters)
        window = tables.read_window(workspace, owner, table, view, 0, 50)
        assert [r.id for r in window] == expected
    from morket.core.errors import ValidationFailed

    bad = {"op": "and", "conditions": [{"column_id": column.id, "operator": "state_is", "value": "sleepy"}]}
    with pytest.raises(ValidationFailed, match="Enrichment state is one of"):
        tables.update_view(workspace, owner, table, view, filters=bad)
    # The view editor offers the operator.
    login(client, owner)
    page = client.get(f"/w/{workspace.slug}/tables/{table.id}").get_data(as_text=True)
    assert 'value="state_is"' in page


def test_column_menu_offers_runs_and_edit(client, db, people):
    workspace, owner, table, ids, _ = people
    column = columns.create_enrichment_column(workspace, owner, table, _setup(ids))
    login(client, owner)
    menu = client.get(f"/w/{workspace.slug}/tables/{table.id}/columns/{column.id}/menu").get_data(as_text=True)
    assert "Run column: all rows" in menu and "Run column: empty rows" in menu
    assert f"/enrichment/{column.id}/estimate?scope=empty" in menu
    plain = client.get(f"/w/{workspace.slug}/tables/{table.id}/columns/{ids['Domain']}/menu").get_data(as_text=True)
    assert "Run column" not in plain


def test_a_generic_http_step_is_set_up_from_the_form(client, db, people):
    workspace, owner, table, ids, _ = people
    login(client, owner)
    base = f"/w/{workspace.slug}/tables/{table.id}/enrichment"
    token = csrf_token(client, f"{base}/new")
    fields = {
        "csrf_token": token,
        "name": "Industry",
        "step_1": "http.request",
        "http_method_1": "GET",
        "http_url_1": "https://api.example.com/companies?domain={{domain}}",
        "http_outputs_1": "industry = $.company.industry\nsize = $.company.employees",
    }
    refreshed = client.post(base, data={**fields, "refresh": "1"}, headers={"HX-Request": "true"})
    html = refreshed.get_data(as_text=True)
    assert 'name="in_domain"' in html and 'name="out_size"' in html and 'value="industry" selected' in html
    saved = client.post(base, data={**fields, "target": "industry", "in_domain": str(ids["Domain"])})
    assert saved.status_code == 303
    column = next(c for c in tables.get_table_or_404(workspace, table.id).live_columns if c.name == "Industry")
    step = columns.column_config(column).steps[0]
    assert step.options["url"].endswith("{{domain}}")
    assert step.options["outputs"] == {"industry": "$.company.industry", "size": "$.company.employees"}
    page = client.get(f"{base}/{column.id}").get_data(as_text=True)
    assert "industry = $.company.industry" in page
    bad = client.post(base, data={**fields, "name": "Other", "http_url_1": "ftp://x/{{domain}}", "target": "industry"})
    assert bad.status_code == 422 and "url must start with http" in bad.get_data(as_text=True)


def test_enrichment_values_and_reasons_are_escaped(client, db, people):
    workspace, owner, table, ids, row_ids = people
    column = columns.create_enrichment_column(workspace, owner, table, _setup(ids))
    store = storage.storage_for(table)
    from morket.extensions import db as _db

    hostile = '<img src=x onerror="alert(1)">'
    state = {str(column.id): {"status": "error", "provider": "<b>p</b>", "message": hostile, "run_id": 1}}
    _db.session.execute(
        sa.update(store.rows)
        .where(store.rows.c.id == row_ids[0])
        .values(
            {
                store.columns[column.id].name: sa.bindparam(None, {"value": hostile}, type_=JSONB),
                "cell_state": sa.bindparam(None, state, type_=JSONB),
            }
        )
    )
    login(client, owner)
    html = client.get(f"/w/{workspace.slug}/tables/{table.id}/rows", headers={"HX-Request": "true"}).get_data(
        as_text=True
    )
    assert "<img" not in html and "<b>" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
