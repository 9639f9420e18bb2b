"""Editing an enrichment column in the drawer, and writing the HTTP-request and scrape columns there.

The drawer posts the full page's fields and saves through the same services, so the same setups are
accepted and refused by both (one parametrised test posts each bad setup to both and compares the
messages). The HTTP card's "Send test request" goes through the run's SSRF guard; a header holding a
key is stored as the workspace's HTTP API key and the column keeps ``{{api_key}}``.
"""

from __future__ import annotations

import re

import pytest

from morket.credentials.models import ProviderCredential
from morket.enrichment import columns, panel_forms, panel_service
from morket.enrichment.schemas import ColumnSetup
from morket.extensions import db as _db
from morket.tables import service as tables
from morket.workspaces.models import Membership
from tests.factories import UserFactory, csrf_token, login, workspace_with_owner
from tests.providers.test_http_request import JsonApi

PEOPLE = ("Ada Lovelace", "Grace Hopper", "Alan Turing")


@pytest.fixture
def leads(db):
    """A table with Name, Company domain and Website, 5 rows."""
    workspace, owner = workspace_with_owner()
    table = tables.create_table(
        workspace,
        owner,
        "Leads",
        columns=[
            {"name": "Name", "type": "text"},
            {"name": "Company domain", "type": "domain"},
            {"name": "Website", "type": "url"},
        ],
    )
    rows = [
        {"Name": PEOPLE[i % 3], "Company domain": f"acct{i}.example.com", "Website": f"https://acct{i}.example.com/"}
        for i in range(5)
    ]
    tables.insert_rows(workspace, owner, table, rows)
    return workspace, owner, table, {c.name: c.id for c in table.live_columns}


def _waterfall(workspace, owner, table, ids):
    """Hunter's email finder, then Apollo's people match: a work-email waterfall."""
    setup = ColumnSetup.model_validate(
        {
            "name": "Work email",
            "steps": [{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
            "target": "email",
            "inputs": {"domain": ids["Company domain"], "first_name": ids["Name"], "last_name": ids["Name"]},
            "derive": {"first_name": "first_name", "last_name": "last_name"},
        }
    )
    return columns.create_enrichment_column(workspace, owner, table, setup)


def _base(workspace, table) -> str:
    return f"/w/{workspace.slug}/tables/{table.id}/enrichment"


def _html(resp) -> str:
    return resp.get_data(as_text=True)


def _steps(html: str) -> list[str]:
    return re.findall(r'<li class="enrich-step" id="enrich-step-\d+" data-step="([^"]+)"', html)


def _fields(html: str) -> dict[str, str]:
    """Every named input's value and every select's selected option of the drawer's form, as the browser posts."""
    form = html[html.index("<form") :]
    values = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))
    values.update(re.findall(r'<input name="([^"]+)" value="([^"]*)"', form))
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body) or re.search(r"<option selected>([^<]*)<", body)
        if chosen:
            values[name] = chosen.group(1)
    return values


# --- editing a column's steps in the drawer ------------------------------------------------------------------


def test_the_drawer_edits_steps_reorders_them_by_buttons_and_saves_without_erasing_values(client, leads):
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    row_id = tables.read_window(workspace, owner, table, None, 0, 1)[0].id
    tables.write_cells(workspace, table, {row_id: {column.id: {"value": "ada@acct0.example.com"}}})
    login(client, owner)
    url = f"{_base(workspace, table)}/{column.id}/panel/edit"
    resp = client.get(url, headers={"HX-Request": "true"})
    assert resp.status_code == 200
    html = _html(resp)
    assert "<html" not in html
    assert _steps(html) == ["hunter.email_finder", "apollo.people_match"]
    assert "new steps" in html.lower() or "apply to the next run" in html
    # The first rows' inputs as they would be sent: first and last names of Name.
    preview = html[html.index('id="enrich-preview"') :]
    assert '<td data-input="first_name">Ada</td>' in preview and '<td data-input="last_name">Lovelace</td>' in preview

    # Move Apollo up: the form comes back reordered, nothing saved yet.
    fields = _fields(html)
    moved = client.post(url, data={**fields, "step_action": "up:2"}, headers={"HX-Request": "true"})
    assert moved.status_code == 200
    assert _steps(_html(moved)) == ["apollo.people_match", "hunter.email_finder"]
    assert [s.operation for s in columns.column_config(column).steps] == ["hunter.email_finder", "apollo.people_match"]

    # Add Clearbit's person lookup, then remove it again.
    fields = _fields(_html(moved))
    added = client.post(url, data={**fields, "add_step": "clearbit.person", "step_action": "add"})
    assert _steps(_html(added)) == ["apollo.people_match", "hunter.email_finder", "clearbit.person"]
    removed = client.post(url, data={**_fields(_html(added)), "step_action": "remove:3"})
    assert _steps(_html(removed)) == ["apollo.people_match", "hunter.email_finder"]

    # A changed input re-renders the preview from the new column.
    fields = _fields(_html(removed))
    refreshed = client.post(url, data={**fields, "in_first_name": str(ids["Name"]), "refresh": "1"})
    assert '<td data-input="first_name">Ada Lovelace</td>' in _html(refreshed)

    saved = client.post(url, data=fields, headers={"HX-Request": "true"})
    assert saved.status_code == 204 and f"enrich={column.id}" in saved.headers["HX-Redirect"]
    table = tables.get_table_or_404(workspace, table.id)
    column = columns.get_enrichment_column_or_404(workspace, table, column.id)
    assert [s.operation for s in columns.column_config(column).steps] == ["apollo.people_match", "hunter.email_finder"]
    # The value found before the edit is still there.
    row = tables.get_row(workspace, owner, table, row_id)
    assert (row.values(table).get(column.id) or {}).get("value") == "ada@acct0.example.com"


def test_the_column_menu_and_the_runs_panel_open_the_drawer_editor(client, leads):
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    login(client, owner)
    html = _html(client.get(f"{_base(workspace, table)}/{column.id}/panel", headers={"HX-Request": "true"}))
    assert f'href="{_base(workspace, table)}/{column.id}/panel/edit"' in html
    # Without JavaScript the editor is a whole page.
    page = client.get(f"{_base(workspace, table)}/{column.id}/panel/edit")
    assert page.status_code == 200 and "<html" in _html(page) and 'id="enrich-edit-form"' in _html(page)


def _bad_forms(ids, column_id):
    good = {
        "name": "Work email",
        "step_1": "hunter.email_finder",
        "target": "email",
        "in_domain": str(ids["Company domain"]),
        "in_first_name": f"{ids['Name']}:first_name",
        "in_last_name": f"{ids['Name']}:last_name",
    }
    return {
        "no step": {**good, "step_1": ""},
        "unknown operation": {**good, "step_1": "nope.nothing"},
        "same step twice": {**good, "step_2": "hunter.email_finder"},
        "target not delivered": {**good, "target": "industry"},
        "input from another table": {**good, "in_domain": "999999"},
        "input not a number": {**good, "in_domain": "abc"},
        "reads its own cells": {**good, "in_domain": str(column_id)},
        "required input missing": {**good, "in_domain": ""},
        "output into a computed column": {**good, "out_email": str(column_id)},
        "output into an existing name": {**good, "out_email": "new", "outname_email": "Name"},
        "bad condition": {**good, "cond_col": "999999"},
        "empty name": {**good, "name": ""},
        "http without url": {**good, "step_1": "http.request", "http_url_1": "", "target": "response"},
        "http bad jsonpath": {
            **good,
            "step_1": "http.request",
            "http_url_1": "https://api.example.com/x",
            "http_outputs_1": "industry = $[[[",
            "target": "industry",
        },
        "http key in a header": {
            **good,
            "step_1": "http.request",
            "http_url_1": "https://api.example.com/x",
            "http_outputs_1": "industry = $.industry",
            "http_headers_1": "Authorization: Bearer sk_live_4f9a8b7c6d5e4f3a2b1c",
            "target": "industry",
        },
        "http bad output type": {
            **good,
            "step_1": "http.request",
            "http_url_1": "https://api.example.com/x",
            "http_outputs_1": "industry = $.industry",
            "http_types_1": "industry = money",
            "target": "industry",
        },
    }


@pytest.mark.parametrize("case", list(_bad_forms({"Company domain": 1, "Name": 2}, 3)))
def test_the_drawer_and_the_full_page_refuse_the_same_setups_with_the_same_message(client, leads, case):
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    before = dict(column.config)
    login(client, owner)
    token = csrf_token(client, f"{_base(workspace, table)}/{column.id}")
    data = {"csrf_token": token, **_bad_forms(ids, column.id)[case]}
    page = client.post(f"{_base(workspace, table)}/{column.id}", data=data)
    drawer = client.post(f"{_base(workspace, table)}/{column.id}/panel/edit", data=data, headers={"HX-Request": "true"})
    assert 400 <= page.status_code < 500 and page.status_code == drawer.status_code, case
    page_error = re.search(r'id="enrichment-setup-error">([^<]+)<', _html(page)).group(1)
    drawer_error = re.search(r'id="enrich-error">([^<]+)<', _html(drawer)).group(1)
    assert page_error == drawer_error, case
    _db.session.expire_all()
    assert columns.get_enrichment_column_or_404(workspace, table, column.id).config == before


def test_the_drawer_accepts_what_the_full_page_accepts_and_stores_the_same_config(client, leads):
    workspace, owner, table, ids = leads
    first = _waterfall(workspace, owner, table, ids)
    login(client, owner)
    token = csrf_token(client, f"{_base(workspace, table)}/{first.id}")
    data = {
        "csrf_token": token,
        "name": "Work email",
        "step_1": "apollo.people_match",
        "step_2": "hunter.email_finder",
        "target": "email",
        "in_domain": str(ids["Company domain"]),
        "in_first_name": f"{ids['Name']}:first_name",
        "in_last_name": f"{ids['Name']}:last_name",
        "validation": "hunter.email_verifier",
        "accept": "valid",
        "cond_col": str(ids["Company domain"]),
        "cond_op": "is_not_empty",
    }
    assert client.post(f"{_base(workspace, table)}/{first.id}", data=data).status_code == 303
    _db.session.expire_all()
    by_page = dict(columns.get_enrichment_column_or_404(workspace, table, first.id).config)
    resp = client.post(f"{_base(workspace, table)}/{first.id}/panel/edit", data={**data, "overwrite": ""})
    assert resp.status_code == 303
    _db.session.expire_all()
    assert columns.get_enrichment_column_or_404(workspace, table, first.id).config == by_page


def test_viewers_get_403_strangers_404_and_posts_need_the_csrf_token(client, db, leads):
    workspace, owner, table, ids = leads
    column = _waterfall(workspace, owner, table, ids)
    base = _base(workspace, table)
    viewer = UserFactory()
    db.session.add(Membership(workspace_id=workspace.id, user_id=viewer.id, role="viewer"))
    db.session.flush()
    login(client, viewer)
    token = csrf_token(client, "/w")
    assert client.get(f"{base}/{column.id}/panel/edit").status_code == 403
    assert client.post(f"{base}/{column.id}/panel/edit", data={"csrf_token": token}).status_code == 403
    assert client.get(f"{base}/panel/http").status_code == 403
    assert client.post(f"{base}/panel/http", data={"csrf_token": token}).status_code == 403
    assert client.post(f"{base}/panel/http/test", data={"csrf_token": token}).status_code == 403
    assert client.post(f"{base}/panel/scrape-preview", data={"csrf_token": token}).status_code == 403

    other, stranger = workspace_with_owner()
    login(client, stranger)
    token = csrf_token(client, "/w")
    theirs = f"/w/{other.slug}/tables/{table.id}/enrichment"
    assert client.get(f"{theirs}/{column.id}/panel/edit").status_code == 404
    assert client.post(f"{theirs}/{column.id}/panel/edit", data={"csrf_token": token}).status_code == 404
    assert client.get(f"{theirs}/panel/http").status_code == 404
    assert client.post(f"{theirs}/panel/http/test", data={"csrf_token": token}).status_code == 404

    login(client, owner)
    before = dict(column.config)
    data = {"name": "Hacked", "step_1": "hunter.email_finder", "target": "email"}
    assert client.post(f"{base}/{column.id}/panel/edit", data=data).status_code == 400
    assert client.post(f"{base}/panel/http", data={"http_url_1": "https://x.example/"}).status_code == 400
    _db.session.expire_all()
    assert columns.get_enrichment_column_or_404(workspace, table, column.id).config == before


# --- the HTTP-request card in the drawer ---------------------------------------------------------------------


def _http_form(token, ids, **extra):
    return {
        "csrf_token": token,
        "name": "Company API",
        "http_method_1": "GET",
        "http_url_1": "https://api.example.com/companies?site={{website}}",
        "in_website": str(ids["Website"]),
        "out_field": "industry",
        "out_path": "$.company.industry",
        "out_type": "text",
        **extra,
    }


def test_the_http_card_inserts_a_column_into_the_url_and_previews_the_first_row(client, leads):
    workspace, owner, table, ids = leads
    login(client, owner)
    base = _base(workspace, table)
    catalogue = _html(client.get(f"{base}/panel", headers={"HX-Request": "true"}))
    assert f'href="{base}/panel/http"' in catalogue
    token = csrf_token(client, f"{base}/panel/http")
    resp = client.post(
        f"{base}/panel/http",
        data={
            "csrf_token": token,
            "http_url_1": "https://api.example.com/lookup?url=",
            "insert_column": str(ids["Website"]),
            "action": "insert",
            "hdr_name_1": "X-Trace",
            "hdr_value_1": "row-{{website}}",
        },
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200
    html = _html(resp)
    assert 'value="https://api.example.com/lookup?url={{website}}"' in html
    assert re.search(rf'<option value="{ids["Website"]}" selected>Website</option>', html)
    preview = html[html.index('id="enrich-http-preview"') :]
    assert "GET https://api.example.com/lookup?url=https%3A%2F%2Facct0.example.com%2F" in preview
    assert "X-Trace: row-https://acct0.example.com/" in preview


def test_saving_the_http_card_stores_the_same_config_as_the_full_page(client, leads):
    workspace, owner, table, ids = leads
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/http")
    resp = client.post(f"{base}/panel/http", data=_http_form(token, ids), headers={"HX-Request": "true"})
    assert resp.status_code == 204, _html(resp)
    full = {
        "csrf_token": token,
        "name": "Company API 2",
        "step_1": "http.request",
        "http_method_1": "GET",
        "http_url_1": "https://api.example.com/companies?site={{website}}",
        "http_outputs_1": "industry = $.company.industry",
        "in_website": str(ids["Website"]),
        "target": "industry",
        "out_industry": "new",
        "outname_industry": "Industry 2",
    }
    assert client.post(base, data=full).status_code == 303
    table = tables.get_table_or_404(workspace, table.id)
    by_name = {c.name: c for c in table.live_columns}
    drawer, page = by_name["Company API"].config, by_name["Company API 2"].config
    assert drawer["steps"] == page["steps"] and drawer["inputs"] == page["inputs"] and drawer["target"] == "industry"
    assert by_name["Industry"].type == "text" and drawer["outputs"] == [
        {"field": "industry", "column_id": by_name["Industry"].id}
    ]


def test_a_typed_output_and_a_secret_header_kept_as_the_workspace_key(client, leads):
    workspace, owner, table, ids = leads
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/http")
    secret = "sk_live_4f9a8b7c6d5e4f3a2b1c"
    data = _http_form(
        token, ids, out_field="employees", out_path="$.company.employees", out_type="number",
        hdr_name_1="Authorization", hdr_value_1=f"Bearer {secret}",
    )  # fmt: skip
    # The preview masks the secret; a re-rendered form never echoes it as text.
    shown = _html(client.post(f"{base}/panel/http", data={**data, "action": "refresh"}))
    assert "Authorization: Bearer ••••" in shown and secret not in shown.replace(f'value="Bearer {secret}"', "")
    resp = client.post(f"{base}/panel/http", data=data)
    assert resp.status_code == 303, _html(resp)
    table = tables.get_table_or_404(workspace, table.id)
    by_name = {c.name: c for c in table.live_columns}
    assert by_name["Employees"].type == "number"
    options = by_name["Company API"].config["steps"][0]["options"]
    assert options["headers"] == {"Authorization": "Bearer {{api_key}}"}
    assert secret not in str(by_name["Company API"].config)
    stored = _db.session.query(ProviderCredential).filter_by(workspace_id=workspace.id, provider="http").one()
    assert stored.hint == secret[-4:]
    # The drawer's editor shows the template, never the key.
    column_id = by_name["Company API"].id
    edit = _html(client.get(f"{base}/{column_id}/panel/edit"))
    assert secret not in edit and "{{api_key}}" in edit
    # The full page keeps the header and the column type when it saves the column again.
    page = _html(client.get(f"{base}/{column_id}"))
    assert ">Authorization: Bearer {{api_key}}</textarea>" in page
    assert 'name="http_types_1" value="employees = number"' in page
    from morket.enrichment import forms

    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    values = forms.values_from_column(column, columns.setup_of(column))
    assert client.post(f"{base}/{column_id}", data={"csrf_token": token, **values}).status_code == 303
    _db.session.expire_all()
    again = columns.get_enrichment_column_or_404(workspace, table, column_id).config["steps"][0]["options"]
    assert again["headers"] == {"Authorization": "Bearer {{api_key}}"} and again["types"] == {"employees": "number"}


def test_a_second_secret_is_refused_clearly_and_nothing_is_written(client, leads):
    workspace, owner, table, ids = leads
    from morket.credentials.service import create_credential

    create_credential(workspace, owner, "http", "existing-key-123456789")
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/http")
    before = len(table.live_columns)
    data = _http_form(token, ids, hdr_name_1="X-Api-Key", hdr_value_1="another-secret-key-0987654321")
    resp = client.post(f"{base}/panel/http", data=data)
    assert resp.status_code == 409
    html = _html(resp)
    assert "already keeps an HTTP API key (••••6789)" in html and "another-secret-key-0987654321" not in html
    assert len(tables.get_table_or_404(workspace, table.id).live_columns) == before


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/x?u={{website}}",
        "http://10.0.0.8/x?u={{website}}",
        "http://169.254.169.254/latest/{{website}}",
    ],
)
def test_send_test_request_refuses_private_addresses_with_the_guards_message(client, leads, url):
    workspace, owner, table, ids = leads
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/http")
    resp = client.post(f"{base}/panel/http/test", data=_http_form(token, ids, http_url_1=url))
    assert resp.status_code == 200
    html = _html(resp)
    refusal = re.search(
        r'data-outcome="invalid_input">\s*<p class="flash flash-error" role="alert">Refused: ([^<]+)<', html
    )
    assert refusal is not None, html[html.index("enrich-http-preview-h") :][:1500]
    assert "private" in refusal.group(1).lower() or "not allowed" in refusal.group(1).lower()


def test_send_test_request_shows_status_latency_and_the_extracted_value(app, client, leads):
    workspace, owner, table, ids = leads
    api = JsonApi()
    settings = app.config["MORKET"]
    before = settings.get("SCRAPE_ALLOWLIST")
    settings["SCRAPE_ALLOWLIST"] = [f"127.0.0.1:{api.port}"]
    try:
        login(client, owner)
        base = _base(workspace, table)
        token = csrf_token(client, f"{base}/panel/http")
        url = f"http://127.0.0.1:{api.port}/companies?domain={{{{company_domain}}}}"
        data = _http_form(token, ids, http_url_1=url, in_company_domain=str(ids["Company domain"]))
        data.update(out_field="name", out_path="$.company.name")
        html = _html(client.post(f"{base}/panel/http/test", data=data))
    finally:
        settings["SCRAPE_ALLOWLIST"] = before
        api.server.shutdown()
    assert re.search(r"<strong data-test-status>HTTP 200</strong>", html)
    assert re.search(r"<span data-test-latency>\d[\d,]* ms</span>", html)
    assert "<code data-test-value>Acct0</code>" in html
    assert api.received[0]["args"] == {"domain": "acct0.example.com"}


def test_the_scrape_card_previews_the_first_rows_site_through_the_scraping_service(app, client, leads):
    from morket.scraping.models import ScrapeRequest

    workspace, owner, table, ids = leads
    login(client, owner)
    base = _base(workspace, table)
    html = _html(client.get(f"{base}/panel/setup?card=op:website.scrape", headers={"HX-Request": "true"}))
    assert 'id="enrich-scrape-test"' in html
    token = csrf_token(client, f"{base}/panel/setup?card=op:website.scrape")
    data = {"csrf_token": token, "in_domain": str(ids["Website"]), "extractor": "company"}
    # The scraping service's own check answers first: a host that does not resolve is refused, nothing queued.
    refused = client.post(f"{base}/panel/scrape-preview", data=data, headers={"HX-Request": "true"})
    assert refused.status_code == 422 and "could not be resolved" in _html(refused)
    assert _db.session.query(ScrapeRequest).filter_by(workspace_id=workspace.id).count() == 0

    first = tables.read_window(workspace, owner, table, None, 0, 1)[0].id
    tables.write_cells(workspace, table, {first: {ids["Website"]: "http://127.0.0.1:8765/"}})
    settings = app.config["MORKET"]
    before = settings.get("SCRAPE_ALLOWLIST")
    settings["SCRAPE_ALLOWLIST"] = ["127.0.0.1:8765"]
    try:
        resp = client.post(f"{base}/panel/scrape-preview", data=data, headers={"HX-Request": "true"})
    finally:
        settings["SCRAPE_ALLOWLIST"] = before
    assert resp.status_code == 200, _html(resp)
    scrape = _db.session.query(ScrapeRequest).filter_by(workspace_id=workspace.id).one()
    assert scrape.url.startswith("http://127.0.0.1:8765") and scrape.source == "panel"
    assert f"{base}/panel/scrape-preview/{scrape.id}" in _html(resp)
    nothing = client.post(f"{base}/panel/scrape-preview", data={"csrf_token": token, "in_domain": ""})
    assert nothing.status_code == 422 and "Pick the column" in _html(nothing)


def test_placeholders_and_secrets_are_recognised():
    assert panel_forms.placeholder("Company domain") == "company_domain"
    assert panel_forms.placeholder("Société Web") == "societe_web"
    assert panel_forms.placeholder("2nd site") == "c_2nd_site"
    assert panel_forms.looks_secret("Authorization", "Bearer abc")
    assert panel_forms.looks_secret("X-Custom", "sk_live_4f9a8b7c6d5e4f3a2b1c")
    assert not panel_forms.looks_secret("Accept", "application/json")
    assert not panel_forms.looks_secret("Authorization", "Bearer {{api_key}}")
    assert panel_forms.split_secret("Bearer sk_live_4f9a8b7c6d5e4f3a2b1c") == (
        "Bearer {{api_key}}",
        "sk_live_4f9a8b7c6d5e4f3a2b1c",
    )
    assert panel_service.PREVIEW_ROWS == 3


def test_the_stored_key_is_what_a_test_send_and_a_run_put_in_the_header(app, client, leads):
    from morket.credentials.service import create_credential
    from morket.enrichment.plan import build_plan
    from morket.runs.models import Run

    workspace, owner, table, ids = leads
    secret = "stored-http-key-5551234"
    create_credential(workspace, owner, "http", secret)
    api = JsonApi()
    settings = app.config["MORKET"]
    before = settings.get("SCRAPE_ALLOWLIST")
    settings["SCRAPE_ALLOWLIST"] = [f"127.0.0.1:{api.port}"]
    try:
        login(client, owner)
        base = _base(workspace, table)
        token = csrf_token(client, f"{base}/panel/http")
        url = f"http://127.0.0.1:{api.port}/companies?domain={{{{company_domain}}}}"
        data = _http_form(token, ids, http_url_1=url, in_company_domain=str(ids["Company domain"]))
        data.update(out_field="name", out_path="$.company.name", hdr_name_1="Authorization")
        data["hdr_value_1"] = "Bearer {{api_key}}"
        html = _html(client.post(f"{base}/panel/http/test", data=data))
    finally:
        settings["SCRAPE_ALLOWLIST"] = before
        api.server.shutdown()
    assert "<strong data-test-status>HTTP 200</strong>" in html
    assert api.received[0]["headers"]["Authorization"] == f"Bearer {secret}"
    assert secret not in html and "Authorization: Bearer ••••1234" in html
    # A run of such a step resolves the key once, like a provider's.
    options = {"method": "GET", "url": url, "headers": {"Authorization": "Bearer {{api_key}}"}, "outputs": {}}
    run = Run(workspace_id=workspace.id, table_id=table.id, column_id=ids["Name"], created_by_id=owner.id)
    run.config = {"steps": [{"operation": "http.request", "options": options}], "target": "response"}
    plan = build_plan(run)
    assert plan.keys["http"].secret == secret and plan.keys["http"].source == "own"


def test_test_sends_are_rate_limited_per_person(client, leads):
    from morket.core.ratelimit import clear_rate_limits

    workspace, owner, table, ids = leads
    clear_rate_limits()
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/http")
    data = _http_form(token, ids, http_url_1="http://10.0.0.8/x?u={{website}}")
    answers = [client.post(f"{base}/panel/http/test", data=data).status_code for _ in range(21)]
    clear_rate_limits()
    assert answers[:20] == [200] * 20 and answers[20] == 429
