"""What the drawer's HTTP and scrape cards show before anything is saved: the answer's body, and plain errors.

"Send test request" shows the status, latency, extracted value and the beginning of the answer's body;
an API that does not answer in time, a placeholder that is not one ("{{Company domain}}", an unclosed
"{{website") and an answer too large to keep are said in words in the drawer, never a 500, and a setup
with a broken placeholder is refused with the same words and writes nothing. The scrape card's first-row
scrape refuses a private address before anything is queued, and a scrape that failed says why.
"""

from __future__ import annotations

import html as htmllib
import re

import pytest

from morket.enrichment import http_panel
from morket.tables import service as tables
from tests.enrichment.test_panel_edit import _base, _html, _http_form, leads  # noqa: F401
from tests.factories import csrf_token, login
from tests.providers.test_http_request import JsonApi


@pytest.fixture
def api(app):
    """The test JSON API, allowlisted past the SSRF guard's loopback refusal for this test only."""
    server = JsonApi()
    settings = app.config["MORKET"]
    before = settings.get("SCRAPE_ALLOWLIST")
    settings["SCRAPE_ALLOWLIST"] = [f"127.0.0.1:{server.port}"]
    yield server
    settings["SCRAPE_ALLOWLIST"] = before
    server.server.shutdown()


def _test_send(client, workspace, table, ids, url: str, **extra) -> tuple[int, str]:
    login_base = _base(workspace, table)
    token = csrf_token(client, f"{login_base}/panel/http")
    data = _http_form(token, ids, http_url_1=url, in_company_domain=str(ids["Company domain"]), **extra)
    resp = client.post(f"{login_base}/panel/http/test", data=data, headers={"HX-Request": "true"})
    return resp.status_code, _html(resp)


def _result(html: str) -> str:
    start = html.index('id="enrich-http-test-result"')
    return html[start : html.index("</div>", start)]


def test_a_test_send_shows_the_beginning_of_the_answers_body_beside_the_value(client, leads, api):  # noqa: F811
    workspace, owner, table, ids = leads
    login(client, owner)
    url = f"http://127.0.0.1:{api.port}/companies?domain={{{{company_domain}}}}"
    status, html = _test_send(client, workspace, table, ids, url, out_field="name", out_path="$.company.name")
    assert status == 200
    result = _result(html)
    assert "<strong data-test-status>HTTP 200</strong>" in result
    assert "<code data-test-value>Acct0</code>" in result
    body = re.search(r"<pre class=\"enrich-http-body\" data-test-body[^>]*>(.*?)</pre>", result, re.S)
    assert body is not None, result
    assert '"company": {"name": "Acct0"' in htmllib.unescape(body.group(1))
    assert "its beginning" not in result  # the whole (short) body is shown


def test_a_large_answer_is_said_plainly_and_only_its_beginning_is_shown(client, leads, api):  # noqa: F811
    workspace, owner, table, ids = leads
    login(client, owner)
    status, html = _test_send(
        client, workspace, table, ids, f"http://127.0.0.1:{api.port}/big?d={{{{company_domain}}}}"
    )
    assert status == 200
    result = _result(html)
    assert "<strong data-test-status>HTTP 200</strong>" in result
    assert "The answer is too large" in result and "Answer (its beginning)" in result
    body = re.search(r"data-test-body[^>]*>(.*?)</pre>", result, re.S).group(1)
    assert body.startswith("[1,1,1,") and body.endswith("…")
    assert len(body) <= http_panel.EXCERPT_CHARS + 1


def test_an_api_that_does_not_answer_in_time_is_said_in_words(client, leads, api, monkeypatch):  # noqa: F811
    workspace, owner, table, ids = leads
    login(client, owner)
    monkeypatch.setattr(http_panel, "TEST_TIMEOUT_SECONDS", 0.3)  # the /slow route answers after 1 s
    status, html = _test_send(
        client, workspace, table, ids, f"http://127.0.0.1:{api.port}/slow?d={{{{company_domain}}}}"
    )
    assert status == 200
    result = _result(html)
    assert "<strong data-test-status>No answer</strong>" in result
    assert "failed (a run retries it later)" in result
    assert "The API did not answer within 0.3s" in result
    assert "data-test-body" not in result


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://api.example.com/c?site={{Company domain}}", "“{{Company domain}}” is not a placeholder"),
        ("https://api.example.com/c?site={{website", "“{{website” is not a placeholder"),
    ],
)
def test_a_broken_placeholder_is_shown_in_the_preview_refused_on_test_and_save(client, leads, url, fragment):  # noqa: F811
    workspace, owner, table, ids = leads
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/http")
    data = _http_form(token, ids, http_url_1=url)
    before = len(tables.get_table_or_404(workspace, table.id).live_columns)

    refreshed = client.post(f"{base}/panel/http", data={**data, "action": "refresh"}, headers={"HX-Request": "true"})
    assert refreshed.status_code == 200
    alert = re.search(r'<p class="enrich-missing" role="alert">([^<]+)</p>', htmllib.unescape(_html(refreshed)))
    assert alert is not None and fragment in alert.group(1)

    tested = client.post(f"{base}/panel/http/test", data=data, headers={"HX-Request": "true"})
    assert tested.status_code == 200 and fragment in htmllib.unescape(_result(_html(tested)))

    saved = client.post(f"{base}/panel/http", data=data, headers={"HX-Request": "true"})
    assert saved.status_code == 422
    assert fragment in htmllib.unescape(_html(saved))
    assert len(tables.get_table_or_404(workspace, table.id).live_columns) == before


def test_the_scrape_card_refuses_a_private_address_before_queueing_anything(client, leads):  # noqa: F811
    from morket.extensions import db
    from morket.scraping.models import ScrapeRequest

    workspace, owner, table, ids = leads
    first = tables.read_window(workspace, owner, table, None, 0, 1)[0].id
    tables.write_cells(workspace, table, {first: {ids["Website"]: "http://10.0.0.8/admin"}})
    db.session.commit()
    login(client, owner)
    base = _base(workspace, table)
    token = csrf_token(client, f"{base}/panel/setup?card=op:website.scrape")
    data = {"csrf_token": token, "in_domain": str(ids["Website"]), "extractor": "company"}
    resp = client.post(f"{base}/panel/scrape-preview", data=data, headers={"HX-Request": "true"})
    assert 400 <= resp.status_code < 500
    alert = re.search(r'<p class="flash flash-error" role="alert">([^<]+)</p>', _html(resp))
    assert alert is not None
    assert "private" in alert.group(1).lower() or "not allowed" in alert.group(1).lower(), alert.group(1)
    assert db.session.query(ScrapeRequest).filter_by(workspace_id=workspace.id).count() == 0


def test_a_failed_first_row_scrape_says_why_in_the_drawer(client, leads):  # noqa: F811
    from morket.extensions import db
    from morket.scraping.models import ScrapeRequest

    workspace, owner, table, _ids = leads
    scrape = ScrapeRequest(
        workspace_id=workspace.id,
        created_by_id=owner.id,
        source="panel",
        url="https://acct0.example.com/",
        extractor="company",
        status="failed",
        error_kind="robots",
        message="robots.txt does not allow reading this page.",
    )
    db.session.add(scrape)
    db.session.commit()
    login(client, owner)
    resp = client.get(f"{_base(workspace, table)}/panel/scrape-preview/{scrape.id}", headers={"HX-Request": "true"})
    assert resp.status_code == 286  # htmx stops polling
    alert = re.search(r'<p class="flash flash-error" role="alert">([^<]+)</p>', _html(resp))
    assert alert is not None and alert.group(1) == "robots.txt does not allow reading this page."
