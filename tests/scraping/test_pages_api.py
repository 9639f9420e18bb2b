"""The 'scrape a URL' page and the JSON API: start, poll, result; roles, tenancy, unsafe URLs refused up front."""

from __future__ import annotations

import html

import pytest
from sqlalchemy import func, select

from morket.scraping.models import ScrapeRequest
from tests.api.conftest import bearer, make_team
from tests.factories import csrf_token, login


@pytest.fixture
def teams(db, scrape_settings, sites):
    sites.reset()
    return make_team(), make_team()


@pytest.fixture
def token(client):
    def _token(user, workspace) -> str:
        resp = client.post(
            "/api/v1/auth/token",
            json={"email": user.email, "password": "correct horse battery", "workspace": workspace.slug},
        )
        return resp.get_json()["data"]["access_token"]

    return _token


def _count(db) -> int:
    return db.session.scalar(select(func.count()).select_from(ScrapeRequest))


def test_api_start_poll_and_result(client, db, teams, token, run_jobs, sites):
    team, _ = teams
    access = token(team.member, team.workspace)
    resp = client.post("/api/v1/scrapes", json={"url": sites.url("apico.test")}, headers=bearer(access))
    assert resp.status_code == 202, resp.get_json()
    data = resp.get_json()["data"]
    assert (data["status"], data["extractor"], data["result"]) == ("queued", "company", None)
    status_url = data["status_url"]
    assert status_url == f"/api/v1/scrapes/{data['id']}"
    early = client.get(f"{status_url}/result", headers=bearer(access))
    assert early.status_code == 409
    assert run_jobs() == 1
    polled = client.get(status_url, headers=bearer(access)).get_json()["data"]
    assert polled["status"] == "done" and polled["http_status"] == 200
    assert polled["result"]["name"] == "Apico"
    result = client.get(f"{status_url}/result", headers=bearer(access)).get_json()["data"]
    assert result["result"]["emails"] == ["hello@apico.test"]
    assert result["final_url"] == sites.url("apico.test")
    assert sites.hits[("apico.test", "/")] == 1


def test_api_failed_scrape_reports_why(client, db, teams, token, run_jobs, sites):
    team, _ = teams
    access = token(team.admin, team.workspace)
    resp = client.post("/api/v1/scrapes", json={"url": sites.url("nope.test", "/missing")}, headers=bearer(access))
    scrape_id = resp.get_json()["data"]["id"]
    run_jobs()
    data = client.get(f"/api/v1/scrapes/{scrape_id}", headers=bearer(access)).get_json()["data"]
    assert (data["status"], data["error_kind"], data["http_status"]) == ("failed", "http", 404)
    assert data["message"] == "The site answered 404 Not Found."
    resp = client.get(f"/api/v1/scrapes/{scrape_id}/result", headers=bearer(access))
    assert resp.status_code == 409 and resp.get_json()["error"]["message"] == "The site answered 404 Not Found."


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://127.0.0.1:5432/", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://[::1]/", "loopback"),
        ("file:///etc/passwd", "Only http and https"),
        ("", "Some fields need fixing"),
    ],
)
def test_api_refuses_unsafe_urls_before_queueing(client, db, teams, token, url, fragment):
    team, _ = teams
    access = token(team.member, team.workspace)
    before = _count(db)
    resp = client.post("/api/v1/scrapes", json={"url": url}, headers=bearer(access))
    assert resp.status_code == 422
    assert fragment in resp.get_json()["error"]["message"]
    assert _count(db) == before


def test_api_unknown_extractor(client, db, teams, token, sites):
    team, _ = teams
    access = token(team.member, team.workspace)
    resp = client.post("/api/v1/scrapes", json={"url": sites.url(), "extractor": "nope"}, headers=bearer(access))
    assert resp.status_code == 422 and "company, generic, team" in resp.get_json()["error"]["message"]


def test_api_roles_and_tenancy(client, db, teams, token, sites):
    team, other = teams
    viewer = token(team.viewer, team.workspace)
    assert client.post("/api/v1/scrapes", json={"url": sites.url()}, headers=bearer(viewer)).status_code == 403
    member = token(team.member, team.workspace)
    scrape_id = client.post("/api/v1/scrapes", json={"url": sites.url()}, headers=bearer(member)).get_json()["data"][
        "id"
    ]
    outsider = token(other.owner, other.workspace)
    for path in (f"/api/v1/scrapes/{scrape_id}", f"/api/v1/scrapes/{scrape_id}/result"):
        assert client.get(path, headers=bearer(outsider)).status_code == 404
    extractors = client.get("/api/v1/extractors", headers=bearer(member)).get_json()["data"]
    assert [e["name"] for e in extractors] == ["company", "generic", "team"]


def test_page_scrape_shows_json_and_screenshot(client, db, teams, run_jobs, sites):
    team, _ = teams
    login(client, team.member)
    page = f"/w/{team.workspace.slug}/scrape"
    token = csrf_token(client, page)
    resp = client.post(page, data={"csrf_token": token, "url": sites.url("pageco.test"), "extractor": "company"})
    assert resp.status_code == 303
    location = resp.headers["Location"]
    pending = client.get(location, headers={"HX-Request": "true"})
    assert pending.status_code == 200 and "waiting for a scrape worker" in pending.get_data(as_text=True)
    run_jobs()
    done = client.get(location, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx stops polling
    body = done.get_data(as_text=True)
    assert '"name": "Pageco"' in html.unescape(body) and "hello@pageco.test" in body
    assert "<script>alert" not in body
    full = client.get(location)
    assert full.status_code == 200 and "Recent scrapes" in full.get_data(as_text=True)
    shot = client.get(f"{location}/screenshot.jpg")
    assert shot.status_code == 200 and shot.mimetype == "image/jpeg" and shot.data[:3] == b"\xff\xd8\xff"


def test_page_refuses_private_url_with_a_message(client, db, teams, sites):
    team, _ = teams
    login(client, team.member)
    page = f"/w/{team.workspace.slug}/scrape"
    before = _count(db)
    resp = client.post(page, data={"csrf_token": csrf_token(client, page), "url": "http://10.0.0.8/admin"})
    assert resp.status_code == 422
    assert "10.0.0.8 (private)" in resp.get_data(as_text=True)
    assert _count(db) == before


def test_page_roles_and_tenancy(client, new_client, db, teams, sites, run_jobs):
    team, other = teams
    login(client, team.viewer)
    assert client.get(f"/w/{team.workspace.slug}/scrape").status_code == 403
    member = new_client()
    login(member, team.member)
    page = f"/w/{team.workspace.slug}/scrape"
    resp = member.post(page, data={"csrf_token": csrf_token(member, page), "url": sites.url("mine.test")})
    location = resp.headers["Location"]
    stranger = new_client()
    login(stranger, other.owner)
    assert stranger.get(location).status_code == 404
    assert stranger.get(f"{location}/screenshot.jpg").status_code == 404
    # Another workspace's id under one's own slug is not found either.
    scrape_id = location.rsplit("/", 1)[1]
    assert stranger.get(f"/w/{other.workspace.slug}/scrape/{scrape_id}").status_code == 404


def test_api_any_body_gets_a_clear_answer_and_a_refusal_queues_nothing(client, db, teams, token, sites):
    """Hypothesis over scrape bodies and URLs: 202 with one scrape recorded, or 4xx with the reason
    and nothing recorded; never a server error."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from morket.core.ratelimit import clear_rate_limits
    from tests.support.properties import THROUGH_THE_APP

    team, _ = teams
    headers = bearer(token(team.member, team.workspace))
    hosts = st.sampled_from(
        ["127.0.0.1", "[::1]", "169.254.169.254", "0", "10.0.0.1", "localhost", "example.invalid", "apico.test"]
    ) | st.text(max_size=16)
    urls = (
        st.sampled_from([sites.url("apico.test"), sites.url("acme.test", "/about")])
        | st.text(max_size=60)
        | st.builds(
            lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
            st.sampled_from(["http", "https", "HTTP", "ftp", "file", "javascript", "gopher", ""]),
            hosts,
            st.sampled_from(["", ":80", ":0", ":99999", ":abc", f":{sites.port}"]),
            st.sampled_from(["", "/", "/?a=1", "/#x", "/%00", "/../../etc"]) | st.text(max_size=10),
        )
    )
    scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    bodies = (
        st.fixed_dictionaries(
            {"url": urls},
            optional={"extractor": st.sampled_from(["company", "generic", "team"]) | scalars},
        )
        | st.dictionaries(st.text(max_size=6), scalars, max_size=3)
        | st.lists(scalars, max_size=3)
        | scalars
    )
    seen: set[int] = set()

    @given(body=bodies)
    @settings(THROUGH_THE_APP, max_examples=80)
    def check(body):
        clear_rate_limits()
        before = _count(db)
        resp = client.post("/api/v1/scrapes", json=body, headers=headers)
        assert resp.status_code in (202, 400, 422), (resp.status_code, body, resp.get_data(as_text=True)[:300])
        seen.add(resp.status_code)
        envelope = resp.get_json()
        if resp.status_code == 202:
            assert envelope["success"] is True and _count(db) == before + 1
        else:
            assert envelope["success"] is False and envelope["error"]["message"]
            assert _count(db) == before

    check()
    assert seen >= {202, 422}  # accepted and refused bodies were both exercised
