"""An HTTP-request column edited in the drawer: header rows, kept fields with their column type, the first
row's request and "Send test request", exactly as the HTTP card writes a new one.

The editor's rows are turned into the full page's fields before anything reads them, so the drawer and the
full setup page store the same config for the same inputs; the stored key is never shown, only ••••hint.
"""

from __future__ import annotations

import html as htmllib
import re

import pytest

from morket.credentials.service import create_credential
from morket.enrichment import columns, panel_forms
from morket.extensions import db as _db
from morket.tables import service as tables
from tests.enrichment import test_panel_edit as edit_tests
from tests.enrichment.test_panel_edit import _base, _html, _http_form
from tests.factories import csrf_token, login
from tests.providers.test_http_request import JsonApi

SECRET = "stored-http-key-5559876"
leads = edit_tests.leads  # the table with Name, Company domain and Website


def _form_fields(html: str) -> dict[str, str]:
    """What the browser posts for the drawer's form: inputs (any attribute order), textareas, selected options."""
    form = html[html.index("<form") : html.index("</form>")]
    values: dict[str, str] = {}
    for tag in re.findall(r"<input\b[^>]*>", form):
        name = re.search(r'\bname="([^"]+)"', tag)
        if name is None or re.search(r'type="(checkbox|submit)"', tag):
            continue
        value = re.search(r'\bvalue="([^"]*)"', tag)
        values[name.group(1)] = htmllib.unescape(value.group(1)) if value else ""
    for name, body in re.findall(r'<textarea name="([^"]+)"[^>]*>(.*?)</textarea>', form, re.S):
        values[name] = htmllib.unescape(body)
    for name, body in re.findall(r'<select name="([^"]+)"[^>]*>(.*?)</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body) or re.search(r"<option selected>([^<]*)<", body)
        if chosen:
            values[name] = htmllib.unescape(chosen.group(1))
    for tag in re.findall(r"<input\b[^>]*checked[^>]*>", form):
        values[re.search(r'name="([^"]+)"', tag).group(1)] = re.search(r'value="([^"]*)"', tag).group(1)
    return values


def _http_column(client, workspace, owner, table, ids):
    """An HTTP column written with the drawer's card: a team header, the stored key, a number kept."""
    create_credential(workspace, owner, "http", SECRET)
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/http")
    data = _http_form(token, ids, out_field="employees", out_path="$.company.employees", out_type="number")
    data.update(hdr_name_1="X-Team", hdr_value_1="growth", hdr_name_2="Authorization")
    data["hdr_value_2"] = "Bearer {{api_key}}"
    resp = client.post(f"{base}/panel/http", data=data, headers={"HX-Request": "true"})
    assert resp.status_code == 204, _html(resp)
    table = tables.get_table_or_404(workspace, table.id)
    column = next(c for c in table.live_columns if c.name == "Company API")
    return table, column, token


def test_the_editor_shows_an_http_steps_headers_type_and_first_row_request(client, leads):
    workspace, owner, table, ids = leads
    table, column, _ = _http_column(client, workspace, owner, table, ids)
    html = _html(client.get(f"{_base(workspace, table)}/{column.id}/panel/edit", headers={"HX-Request": "true"}))
    fields = _form_fields(html)
    assert fields["hdr_name_1_1"] == "X-Team" and fields["hdr_value_1_1"] == "growth"
    assert fields["hdr_name_1_2"] == "Authorization" and fields["hdr_value_1_2"] == "Bearer {{api_key}}"
    assert fields["hdr_name_1_3"] == ""  # a blank row to add one
    assert (fields["hout_field_1_1"], fields["hout_path_1_1"], fields["hout_type_1_1"]) == (
        "employees",
        "$.company.employees",
        "number",
    )
    assert SECRET not in html
    live = html[html.index('id="enrich-http-live-1"') :]
    assert "GET https://api.example.com/companies?site=https%3A%2F%2Facct0.example.com%2F" in live
    assert "X-Team: growth" in live and "Authorization: Bearer ••••9876" in live
    assert 'id="enrich-http-test-1"' in html


def test_editing_the_url_and_a_header_previews_the_first_row_and_saves_them(client, leads):
    workspace, owner, table, ids = leads
    table, column, _ = _http_column(client, workspace, owner, table, ids)
    url = f"{_base(workspace, table)}/{column.id}/panel/edit"
    fields = _form_fields(_html(client.get(url, headers={"HX-Request": "true"})))
    fields["http_url_1"] = "https://data.example.org/v2/firms/{{website}}?full=1"
    fields.update(hdr_value_1_1="sales-{{website}}", hdr_name_1_3="Accept", hdr_value_1_3="application/json")
    fields["hout_type_1_1"] = "text"
    fields.update(hout_field_1_2="industry", hout_path_1_2="$.company.industry", hout_type_1_2="text")
    refreshed = client.post(url, data={**fields, "refresh": "1"}, headers={"HX-Request": "true"})
    assert refreshed.status_code == 200
    live = _html(refreshed)[_html(refreshed).index('id="enrich-http-live-1"') :]
    assert "GET https://data.example.org/v2/firms/https%3A%2F%2Facct0.example.com%2F?full=1" in live
    assert "X-Team: sales-https://acct0.example.com/" in live and "Accept: application/json" in live
    # Nothing is saved by a refresh.
    _db.session.expire_all()
    assert (
        columns.get_enrichment_column_or_404(workspace, table, column.id)
        .config["steps"][0]["options"]["url"]
        .startswith("https://api.example.com/")
    )

    saved = client.post(url, data=fields, headers={"HX-Request": "true"})
    assert saved.status_code == 204, _html(saved)
    _db.session.expire_all()
    options = columns.get_enrichment_column_or_404(workspace, table, column.id).config["steps"][0]["options"]
    assert options["url"] == "https://data.example.org/v2/firms/{{website}}?full=1"
    assert options["headers"] == {
        "X-Team": "sales-{{website}}",
        "Authorization": "Bearer {{api_key}}",
        "Accept": "application/json",
    }
    assert options["outputs"] == {"employees": "$.company.employees", "industry": "$.company.industry"}
    assert not options.get("types")  # employees went back to text
    assert SECRET not in str(options)


@pytest.mark.parametrize("target", ["http://127.0.0.1:9/x?u={{website}}", "http://169.254.169.254/latest/{{website}}"])
def test_the_editors_test_send_refuses_private_addresses(client, leads, target):
    workspace, owner, table, ids = leads
    table, column, _ = _http_column(client, workspace, owner, table, ids)
    url = f"{_base(workspace, table)}/{column.id}/panel/edit"
    fields = _form_fields(_html(client.get(url, headers={"HX-Request": "true"})))
    fields["http_url_1"] = target
    resp = client.post(f"{url}/http-test", data={**fields, "test_step": "1"}, headers={"HX-Request": "true"})
    assert resp.status_code == 200
    html = _html(resp)
    refusal = re.search(
        r'id="enrich-http-test-result-1" data-outcome="invalid_input">\s*<p[^>]*>Refused: ([^<]+)<', html
    )
    assert refusal is not None, html[html.index('id="enrich-http-live-1"') :][:1500]
    assert "private" in refusal.group(1).lower() or "not allowed" in refusal.group(1).lower()
    # The test saved nothing.
    _db.session.expire_all()
    config = columns.get_enrichment_column_or_404(workspace, table, column.id).config
    assert config["steps"][0]["options"]["url"].startswith("https://api.example.com/")
    bad = client.post(f"{url}/http-test", data={**fields, "test_step": "7"}, headers={"HX-Request": "true"})
    assert bad.status_code == 422 and "Pick an HTTP step" in _html(bad)


def test_the_editors_test_send_reaches_the_api_with_the_stored_key(app, client, leads):
    workspace, owner, table, ids = leads
    table, column, _ = _http_column(client, workspace, owner, table, ids)
    api = JsonApi()
    settings = app.config["MORKET"]
    before = settings.get("SCRAPE_ALLOWLIST")
    settings["SCRAPE_ALLOWLIST"] = [f"127.0.0.1:{api.port}"]
    url = f"{_base(workspace, table)}/{column.id}/panel/edit"
    try:
        fields = _form_fields(_html(client.get(url, headers={"HX-Request": "true"})))
        fields["http_url_1"] = f"http://127.0.0.1:{api.port}/companies?domain={{{{company_domain}}}}"
        fields["in_company_domain"] = str(ids["Company domain"])
        fields.update(hout_field_1_1="name", hout_path_1_1="$.company.name")
        html = _html(client.post(f"{url}/http-test", data={**fields, "test_step": "1"}))
    finally:
        settings["SCRAPE_ALLOWLIST"] = before
        api.server.shutdown()
    assert "<strong data-test-status>HTTP 200</strong>" in html
    assert "<code data-test-value>Acct0</code>" in html
    assert api.received[0]["args"] == {"domain": "acct0.example.com"}
    assert api.received[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in html


def test_the_drawer_editor_and_the_full_page_store_the_same_http_config(client, leads):
    workspace, owner, table, ids = leads
    table, column, token = _http_column(client, workspace, owner, table, ids)
    base = _base(workspace, table)
    url = f"{base}/{column.id}/panel/edit"
    fields = _form_fields(_html(client.get(url, headers={"HX-Request": "true"})))
    fields.update(http_method_1="POST", http_body_1='{"site": "{{website}}"}', hdr_name_1_1="X-Unit")
    fields.update(hout_field_1_2="founded", hout_path_1_2="$.company.founded", hout_type_1_2="date")
    assert client.post(url, data=fields).status_code == 303
    _db.session.expire_all()
    by_drawer = dict(columns.get_enrichment_column_or_404(workspace, table, column.id).config)

    full = panel_forms.join_step_rows(fields)  # what the full page's text fields say
    page = {k: v for k, v in fields.items() if not re.match(r"^(hdr_|hout_)", k)}
    page.update(
        http_headers_1="X-Unit: growth\nAuthorization: Bearer {{api_key}}",
        http_outputs_1="employees = $.company.employees\nfounded = $.company.founded",
        http_types_1="employees = number\nfounded = date",
    )
    assert full["http_headers_1"] == page["http_headers_1"] and full["http_types_1"] == page["http_types_1"]
    assert client.post(f"{base}/{column.id}", data={**page, "csrf_token": token}).status_code == 303
    _db.session.expire_all()
    by_page = dict(columns.get_enrichment_column_or_404(workspace, table, column.id).config)
    assert by_page == by_drawer
    assert by_drawer["steps"][0]["options"]["method"] == "POST"
    assert by_drawer["steps"][0]["options"]["types"] == {"employees": "number", "founded": "date"}
    table = tables.get_table_or_404(workspace, table.id)
    assert {c.name: c.type for c in table.live_columns}.get("Employees") == "number"
