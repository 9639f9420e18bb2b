"""The enrichment panel beside the grid: the catalogue, a card set up by meaning, saving, and runs on the first rows."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa

from morket.enrichment import columns, panel_service
from morket.enrichment.models import EnrichmentAttempt, EnrichmentRun
from morket.extensions import db as _db
from morket.tables import service as tables
from tests.factories import csrf_token, login, workspace_with_owner

PEOPLE = ("Ada Lovelace", "Grace Hopper", "Alan Turing", "Edsger Dijkstra", "Barbara Liskov", "Donald Knuth")


@pytest.fixture
def named(db):
    """The issue's table: a person's full name and a company domain, 14 rows."""
    workspace, owner = workspace_with_owner()
    table = tables.create_table(
        workspace,
        owner,
        "Leads",
        columns=[{"name": "Name", "type": "text"}, {"name": "Company domain", "type": "domain"}],
    )
    rows = [{"Name": PEOPLE[i % len(PEOPLE)], "Company domain": f"acct{i}.example.com"} for i in range(14)]
    tables.insert_rows(workspace, owner, table, rows)
    return workspace, owner, table, {c.name: c.id for c in table.live_columns}


def _base(workspace, table) -> str:
    return f"/w/{workspace.slug}/tables/{table.id}/enrichment"


def _html(resp) -> str:
    return resp.get_data(as_text=True)


def test_the_catalogue_shows_each_enrichment_with_its_price_needs_and_returns(client, named):
    workspace, owner, table, _ = named
    login(client, owner)
    resp = client.get(f"{_base(workspace, table)}/panel", headers={"HX-Request": "true"})
    assert resp.status_code == 200
    html = _html(resp)
    assert "<html" not in html  # a fragment for the drawer
    card = html[html.index('id="card-preset-email-waterfall"') :]
    card = card[: card.index("</li>")]
    # Hunter's finder (2) plus Hunter's verifier (1); Apollo's match (2) plus the verifier (1).
    assert "<strong>3</strong> credits" in card
    assert "Company domain" in card and "First name" in card and "Email" in card
    assert "not run in this workspace yet" in card
    assert "Hunter: Morket credits" in card
    # The full page is what a browser without JavaScript gets.
    page = client.get(f"{_base(workspace, table)}/panel")
    assert page.status_code == 200 and "<html" in _html(page) and 'id="enrich-drawer-body"' in _html(page)


def test_search_and_categories_narrow_the_catalogue(client, named):
    workspace, owner, table, _ = named
    login(client, owner)
    phones = _html(client.get(f"{_base(workspace, table)}/panel?cards=1&category=phones"))
    assert re.findall(r'data-card="([^"]+)"', phones) == ["op:website.scrape"]
    found = _html(client.get(f"{_base(workspace, table)}/panel?cards=1&q=verify"))
    assert re.findall(r'data-card="([^"]+)"', found) == ["op:hunter.email_verifier"]
    nothing = _html(client.get(f"{_base(workspace, table)}/panel?cards=1&q=zzzz"))
    assert 'data-card="' not in nothing
    # Nothing matched: an empty state offers the HTTP-request card ("Call any API") and clearing the search.
    assert "No enrichment matches “zzzz”" in nothing and "data-empty-state" in nothing
    call = re.search(
        r'<a class="button primary" href="([^"]+)" hx-get="\1"[^>]*data-empty-action>Call any API</a>', nothing
    )
    assert call and client.get(call[1], headers={"HX-Request": "true"}).status_code == 200
    clear = re.search(r'href="([^"]+)"[^>]*data-empty-clear>Clear the search</a>', nothing)
    assert clear and "q=" not in clear[1]
    assert 'data-card="' in _html(client.get(clear[1], headers={"HX-Request": "true"}))
    in_category = _html(client.get(f"{_base(workspace, table)}/panel?cards=1&q=verify&category=phones"))
    assert "No enrichment matches “verify”" in in_category and "Call any API" in in_category


def test_an_own_key_makes_its_part_free_and_hit_rates_come_from_the_attempt_log(client, db, named):
    from morket.credentials.service import create_credential

    workspace, owner, table, _ = named
    create_credential(workspace, owner, "hunter", "own-hunter-key-1234")
    for outcome, latency in (("hit", 100), ("not_found", 300), ("hit", 200), ("auth_error", 9000)):
        db.session.add(
            EnrichmentAttempt(
                workspace_id=workspace.id,
                row_id=1,
                provider="apollo",
                operation="apollo.organization_enrich",
                outcome=outcome,
                latency_ms=latency,
            )
        )
    db.session.flush()
    login(client, owner)
    html = _html(client.get(f"{_base(workspace, table)}/panel?cards=1"))
    finder = html[html.index('id="card-op-hunter-email-finder"') :]
    finder = finder[: finder.index("</li>")]
    assert "<strong>0</strong> credits" in finder and "Hunter: your key (free)" in finder
    company = html[html.index('id="card-op-apollo-organization-enrich"') :]
    company = company[: company.index("</li>")]
    # Two hits of three final answers (the auth error is no answer), at a mean of 200 ms.
    assert "67% found of 3 · 200 ms" in company


def test_the_work_email_card_maps_a_full_name_to_first_and_last_names_never_to_a_company(client, named):
    workspace, owner, table, ids = named
    login(client, owner)
    resp = client.get(
        f"{_base(workspace, table)}/panel/setup?card=preset:email_waterfall", headers={"HX-Request": "true"}
    )
    assert resp.status_code == 200
    html = _html(resp)
    selected = dict(re.findall(r'<select name="in_(\w+)".*?<option value="([^"]*)" selected>', html, re.S))
    assert selected["first_name"] == f"{ids['Name']}:first_name"
    assert selected["last_name"] == f"{ids['Name']}:last_name"
    assert selected["domain"] == str(ids["Company domain"])
    company = re.search(r'<select name="in_organization_name".*?</select>', html, re.S).group(0)
    assert " selected>" not in company
    # The first three rows, as they would be sent.
    preview = html[html.index('id="enrich-preview"') :]
    cells = re.findall(r'<td data-input="(\w+)">([^<]*)</td>', preview)
    # Domains as the providers send them: the registrable domain.
    assert dict(cells[:3]) == {"first_name": "Ada", "last_name": "Lovelace", "domain": "example.com"}
    assert ("first_name", "Alan") in cells and len([c for c in cells if c[0] == "domain"]) == 3
    assert "Missing before this can run" not in html
    # The email lands in a typed column of its own by default.
    assert re.search(r'name="target_column" value="1" checked', html)
    assert "Add work email column" in html


def test_what_is_missing_is_said_plainly(client, db):
    workspace, owner = workspace_with_owner()
    table = tables.create_table(workspace, owner, "Domains", columns=[{"name": "Website", "type": "url"}])
    tables.insert_rows(workspace, owner, table, [{"Website": "https://acme.com"}])
    login(client, owner)
    html = _html(
        client.get(f"/w/{workspace.slug}/tables/{table.id}/enrichment/panel/setup?card=op:hunter.email_finder")
    )
    assert "Missing before this can run" in html
    assert "needs a column for: First name, Last name." in html


def test_saving_the_card_adds_a_typed_email_column_and_offers_the_first_ten_rows(client, named):
    workspace, owner, table, ids = named
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/setup?card=preset:email_waterfall")
    resp = client.post(
        f"{base}/panel/setup",
        data={
            "csrf_token": token,
            "card": "preset:email_waterfall",
            "name": "Work email",
            "in_first_name": f"{ids['Name']}:first_name",
            "in_last_name": f"{ids['Name']}:last_name",
            "in_domain": str(ids["Company domain"]),
            "in_organization_name": "",
            "target_column": "1",
            "field": "title",
        },
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 204, _html(resp)
    table = tables.get_table_or_404(workspace, table.id)
    by_name = {c.name: c for c in table.live_columns}
    assert by_name["Work email"].type == "enrichment"
    assert by_name["Email"].type == "email"
    assert by_name["Title"].type == "text"
    column = by_name["Work email"]
    assert f"enrich={column.id}" in resp.headers["HX-Redirect"]
    config = columns.column_config(column)
    assert config.inputs == {"first_name": ids["Name"], "last_name": ids["Name"], "domain": ids["Company domain"]}
    assert config.derive == {"first_name": "first_name", "last_name": "last_name"}
    assert {o.field: o.column_id for o in config.outputs} == {
        "email": by_name["Email"].id,
        "title": by_name["Title"].id,
    }
    assert config.validation is not None and config.validation.operation == "hunter.email_verifier"

    # The column's panel: the first 10 rows first, with their estimate, then the rest or the empty rows.
    html = _html(client.get(f"{base}/{column.id}/panel", headers={"HX-Request": "true"}))
    first = html[html.index('data-rows="first"') :]
    first = first[: first.index("</form>")]
    assert "Run on the first 10 rows" in first and 'class="button primary"' in first
    assert "up to <strong data-estimate-credits>30</strong> credits" in first
    assert "Run on the rest" in html and "Run on empty rows only" in html

    resp = client.post(
        f"{base}/{column.id}/panel/runs", data={"csrf_token": token, "rows": "first"}, headers={"HX-Request": "true"}
    )
    assert resp.status_code == 200
    triggers = json.loads(resp.headers["HX-Trigger"])
    assert "enrichment-run-started" in triggers
    assert [t["message"] for t in triggers["morket:toast"]["toasts"]] == [
        "Run started on 10 rows: charged only for values found."
    ]
    run = _db.session.scalars(sa.select(EnrichmentRun).where(EnrichmentRun.column_id == column.id)).one()
    assert (run.scope, run.total) == ("selected", 10)
    assert f'id="run-{run.id}-progress"' in _html(resp)
    # While that run is under way, the drawer offers what comes after the first rows, not them again.
    assert 'data-rows="first"' not in _html(resp)
    assert re.search(r'class="button primary" id="enrich-run-rest"', _html(resp))
    resp = client.post(f"{base}/{column.id}/panel/runs", data={"csrf_token": token, "rows": "rest"})
    assert resp.status_code == 200
    runs = _db.session.scalars(
        sa.select(EnrichmentRun).where(EnrichmentRun.column_id == column.id).order_by(EnrichmentRun.id)
    ).all()
    assert [r.total for r in runs] == [10, 4]


def test_a_returned_field_is_one_click_to_add_as_a_column(client, named):
    workspace, owner, table, ids = named
    sample = panel_service.sample_table(workspace, owner, table)
    card = panel_service.get_card_or_404(workspace, "op:apollo.organization_enrich")
    column = panel_service.create_from_card(
        workspace, owner, table, card, name="Company", chosen={"domain": (ids["Company domain"], None)}
    )
    assert sample.roles == {ids["Name"]: "full_name", ids["Company domain"]: "domain"}
    login(client, owner)
    base = _base(workspace, table)
    html = _html(client.get(f"{base}/{column.id}/panel"))
    assert 'data-add-field="employees"' in html
    token = csrf_token(client, f"{base}/{column.id}/panel")
    resp = client.post(f"{base}/{column.id}/panel/fields", data={"csrf_token": token, "field": "employees"})
    assert resp.status_code == 303
    table = tables.get_table_or_404(workspace, table.id)
    assert {c.name: c.type for c in table.live_columns}["Employees"] == "number"
    again = client.post(f"{base}/{column.id}/panel/fields", data={"csrf_token": token, "field": "employees"})
    assert again.status_code == 422 and "already has a column" in _html(again)


def test_bad_panel_input_is_a_clear_4xx_and_writes_nothing(client, named):
    workspace, owner, table, ids = named
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/setup?card=preset:email_waterfall")
    before = len(tables.get_table_or_404(workspace, table.id).live_columns)
    resp = client.post(
        f"{base}/panel/setup",
        data={"csrf_token": token, "card": "preset:email_waterfall", "in_first_name": "999999", "target_column": "1"},
    )
    assert resp.status_code == 422
    assert "First name: pick a column of this table." in _html(resp)
    resp = client.post(
        f"{base}/panel/setup",
        data={"csrf_token": token, "card": "preset:email_waterfall", "field": "not_a_field", "target_column": "1"},
    )
    assert resp.status_code == 422 and "returns no field" in _html(resp)
    _db.session.expire_all()
    assert len(tables.get_table_or_404(workspace, table.id).live_columns) == before
    assert client.post(f"{base}/999999/panel/runs", data={"csrf_token": token, "rows": "first"}).status_code == 404


def test_a_setup_link_without_a_known_card_goes_back_to_the_catalogue(client, named):
    workspace, owner, table, _ = named
    login(client, owner)
    base = _base(workspace, table)
    for query in ("", "?card=", "?card=op:nope.nothing"):
        resp = client.get(f"{base}/panel/setup{query}")
        assert resp.status_code == 303 and resp.headers["Location"] == f"{base}/panel"
    drawer = client.get(
        f"{base}/panel/setup?card=op:nope.nothing", headers={"HX-Request": "true"}, follow_redirects=True
    )
    html = _html(drawer)
    assert drawer.status_code == 200 and "<html" not in html and 'id="card-preset-email-waterfall"' in html


def test_another_workspace_gets_404(client, named):
    workspace, owner, table, ids = named
    other, stranger = workspace_with_owner()
    card = panel_service.get_card_or_404(workspace, "op:apollo.organization_enrich")
    column = panel_service.create_from_card(
        workspace, owner, table, card, name="Company", chosen={"domain": (ids["Company domain"], None)}
    )
    login(client, stranger)
    base = f"/w/{other.slug}/tables/{table.id}/enrichment"
    assert client.get(f"{base}/panel").status_code == 404
    assert client.get(f"{base}/panel/setup?card=preset:email_waterfall").status_code == 404
    assert client.get(f"{base}/panel/setup").status_code == 404
    assert client.get(f"{base}/{column.id}/panel").status_code == 404


def _hunter_column(workspace, owner, table, ids):
    """Hunter's email finder from the panel's card: the domain, and first and last names derived from Name."""
    card = panel_service.get_card_or_404(workspace, "op:hunter.email_finder")
    return panel_service.create_from_card(
        workspace,
        owner,
        table,
        card,
        name="Work email",
        chosen={
            "domain": (ids["Company domain"], None),
            "first_name": (ids["Name"], "first_name"),
            "last_name": (ids["Name"], "last_name"),
        },
    )


def test_derived_names_are_what_the_provider_receives(db, quick, sandbox, named):
    from tests.enrichment.test_engine_support import finish_run, grant

    workspace, owner, table, ids = named
    grant(workspace, 1_000)
    column = _hunter_column(workspace, owner, table, ids)
    scope, row_ids = panel_service.run_scope(workspace, owner, table, "first")
    run = panel_service.start(workspace, owner, table, column, "first")
    assert (scope, len(row_ids), run.total) == ("selected", 10, 10)
    finish_run(run.id)
    sent = [(e["params"]["first_name"], e["params"]["last_name"]) for e in sandbox.log("hunter")]
    assert ("Ada", "Lovelace") in sent and all(" " not in first for first, _ in sent)


def test_a_website_scrape_previews_the_domain_each_row_sends(client, db):
    workspace, owner = workspace_with_owner()
    table = tables.create_table(workspace, owner, "Sites", columns=[{"name": "Website", "type": "text"}])
    rows = [{"Website": "https://www.acme.co.uk/about"}, {"Website": "not a website"}, {"Website": ""}]
    tables.insert_rows(workspace, owner, table, rows)
    login(client, owner)
    html = _html(client.get(f"/w/{workspace.slug}/tables/{table.id}/enrichment/panel/setup?card=op:website.scrape"))
    cells = re.findall(r'<td data-input="domain">(.*?)</td>', html)
    assert cells == [
        "https://www.acme.co.uk/about",
        '<span class="enrich-unusable">“not a website”: no company domain or url</span>',
        '<span class="muted">empty</span>',
    ]


def test_an_http_request_is_previewed_on_the_first_row_before_saving(client, named):
    workspace, owner, table, ids = named
    login(client, owner)
    base = _base(workspace, table)
    page = client.get(f"{base}/new?step_1=http.request")
    assert page.status_code == 200 and '<option value="http.request" selected>' in _html(page)
    token = csrf_token(client, f"{base}/new?step_1=http.request")
    resp = client.post(
        base,
        data={
            "csrf_token": token,
            "refresh": "1",
            "name": "API call",
            "step_1": "http.request",
            "http_method_1": "POST",
            "http_url_1": "https://api.example.com/people?domain={{domain}}",
            "http_body_1": '{"first": "{{first}}"}',
            "in_domain": str(ids["Company domain"]),
            "in_first": f"{ids['Name']}:first_name",
        },
    )
    assert resp.status_code == 200
    preview = re.search(r"<code data-http-request>(.*?)</code>", _html(resp), re.S).group(1)
    assert preview.startswith("POST https://api.example.com/people?domain=acct0.example.com")
    assert "{&#34;first&#34;: &#34;Ada&#34;}" in preview


def test_a_run_that_ends_says_so_once_in_a_toast(client, quick, sandbox, named):
    """The poll that finds the run over stops polling (286) and carries what it found and charged."""
    from tests.enrichment.test_engine_support import finish_run, grant

    workspace, owner, table, ids = named
    grant(workspace, 1_000)
    column = _hunter_column(workspace, owner, table, ids)
    run = panel_service.start(workspace, owner, table, column, "first")
    run_id = run.id
    login(client, owner)
    progress = f"/w/{workspace.slug}/runs/{run_id}/progress"
    running = client.get(progress, headers={"HX-Request": "true"})
    assert running.status_code == 200 and "HX-Trigger" not in running.headers
    finish_run(run_id)
    done = _db.session.get(EnrichmentRun, run_id)
    _db.session.refresh(done)
    resp = client.get(progress, headers={"HX-Request": "true"})
    assert resp.status_code == 286
    toasts = json.loads(resp.headers["HX-Trigger"])["morket:toast"]["toasts"]
    assert toasts == [
        {
            "message": f"Run finished: values found for {done.succeeded} of 10 rows, "
            f"{done.credits_used} credit{'' if done.credits_used == 1 else 's'} charged.",
            "kind": "success",
        }
    ]
