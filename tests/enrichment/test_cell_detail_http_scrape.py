"""A cell of an HTTP-request or website-scrape column shows what was done for its row: the request sent
(URL, masked headers, status, latency) or the page read (final URL, status, or why it was not read)."""

from __future__ import annotations

import re

from morket.enrichment.models import EnrichmentAttempt
from morket.enrichment.schemas import ColumnSetup
from morket.extensions import db as _db
from morket.providers.website import result_from_webhook
from morket.tables import service as tables
from tests.enrichment import test_panel_edit as edit_tests
from tests.enrichment.test_panel_edit import _base, _html
from tests.enrichment.test_panel_edit_http import SECRET, _http_column
from tests.factories import login

leads = edit_tests.leads


def _attempt(workspace, table, column, row_id, operation, **fields):
    _db.session.add(
        EnrichmentAttempt(
            workspace_id=workspace.id,
            row_id=row_id,
            column_id=column.id,
            provider=operation.split(".")[0],
            operation=operation,
            **fields,
        )
    )
    _db.session.commit()


def test_an_http_cell_shows_the_request_its_row_sends_with_status_and_latency(client, leads):
    workspace, owner, table, ids = leads
    table, column, _ = _http_column(client, workspace, owner, table, ids)
    second = tables.read_window(workspace, owner, table, None, 0, 2)[1].id
    _attempt(workspace, table, column, second, "http.request", outcome="hit", http_status=200, latency_ms=87)
    html = _html(
        client.get(f"{_base(workspace, table)}/{column.id}/rows/{second}/attempts", headers={"HX-Request": "true"})
    )
    request = html[html.index("data-cell-request") :]
    assert "GET https://api.example.com/companies?site=https%3A%2F%2Facct1.example.com%2F" in request
    assert "Authorization: Bearer ••••9876" in request and "X-Team: growth" in request
    assert SECRET not in html
    attempts = html[html.index('<tr data-attempt="http.request">') :]
    assert "HTTP 200" in attempts and '<td class="num">87</td>' in attempts


def test_a_scrape_cell_shows_the_page_read_or_why_it_was_not(client, leads):
    workspace, owner, table, ids = leads
    setup = ColumnSetup.model_validate(
        {
            "name": "Site",
            "steps": [{"operation": "website.scrape"}],
            "target": "name",
            "inputs": {"domain": ids["Website"]},
        }
    )
    from morket.enrichment import columns

    column = columns.create_enrichment_column(workspace, owner, table, setup)
    _db.session.commit()
    first, second = (r.id for r in tables.read_window(workspace, owner, table, None, 0, 2))
    read = result_from_webhook(
        {
            "outcome": "hit",
            "values": {"name": "Acct0"},
            "http_status": 200,
            "final_url": "https://www.acct0.example.com/en/",
        }
    )
    _attempt(workspace, table, column, first, "website.scrape", outcome=read.outcome, http_status=200, latency_ms=2300,
             message=read.message)  # fmt: skip
    refused = result_from_webhook(
        {"outcome": "invalid_input", "message": "robots.txt disallows this page.", "http_status": None}
    )
    _attempt(workspace, table, column, second, "website.scrape", outcome=refused.outcome, latency_ms=40,
             message=refused.message)  # fmt: skip
    login(client, owner)
    base = f"{_base(workspace, table)}/{column.id}/rows"
    html = _html(client.get(f"{base}/{first}/attempts", headers={"HX-Request": "true"}))
    page = html[html.index("data-cell-page") :]
    assert "<dd data-page-url>https://www.acct0.example.com/en/</dd>" in page
    assert "HTTP 200 · 2,300 ms" in page and "data-page-reason" not in page
    assert "data-cell-request" not in html
    html = _html(client.get(f"{base}/{second}/attempts", headers={"HX-Request": "true"}))
    page = html[html.index("data-cell-page") :]
    assert "<dd data-page-reason>robots.txt disallows this page.</dd>" in page
    assert "no answer" in page and "data-page-url" not in page


def test_the_scrape_cards_preview_lists_each_field_with_the_first_rows_value(client, leads):
    from morket.scraping.models import ScrapeRequest

    workspace, owner, table, ids = leads
    scrape = ScrapeRequest(workspace_id=workspace.id, url="https://acct0.example.com/", extractor="company")
    scrape.status = "running"
    _db.session.add(scrape)
    _db.session.commit()
    login(client, owner)
    url = f"{_base(workspace, table)}/panel/scrape-preview/{scrape.id}"
    waiting = client.get(url, headers={"HX-Request": "true"})
    assert waiting.status_code == 200 and f'hx-get="{url}"' in _html(waiting)
    scrape.status, scrape.http_status = "done", 200
    scrape.final_url = "https://www.acct0.example.com/"
    scrape.result = {"name": "Acct0", "emails": ["hello@acct0.example.com"], "phones": [], "website": "x"}
    _db.session.commit()
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286
    html = _html(done)
    assert '<dd data-scrape-field="name">Acct0</dd>' in html
    assert (
        'data-scrape-field="emails">[&#34;hello@acct0.example.com&#34;]</dd>' in html
        or "hello@acct0.example.com" in html
    )
    assert re.search(r'data-scrape-field="phones"><span class="muted">nothing found', html)
    assert "https://www.acct0.example.com/" in html and "HTTP 200" in html
    # The card's fields to keep as columns are the same ones, one checkbox each.
    card = _html(
        client.get(f"{_base(workspace, table)}/panel/setup?card=op:website.scrape", headers={"HX-Request": "true"})
    )
    assert re.search(r'name="field" value="emails"', card) and re.search(r'name="field" value="phones"', card)
    # Another workspace's scrape is not found.
    from tests.factories import workspace_with_owner

    other, other_owner = workspace_with_owner()
    stranger = ScrapeRequest(workspace_id=other.id, url="https://x.example.com/", extractor="company")
    _db.session.add(stranger)
    _db.session.commit()
    assert client.get(f"{_base(workspace, table)}/panel/scrape-preview/{stranger.id}").status_code == 404
