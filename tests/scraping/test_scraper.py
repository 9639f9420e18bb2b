"""Real Chromium against local sites: company pages, failures, redirects into the network, hostile pages.

The local server's own request log is the independent record: a refused request never reaches it.
"""

from __future__ import annotations

import time

import pytest

from morket.scraping.browser import get_pool


def test_static_company_page(scraper, sites):
    outcome = scraper.scrape(sites.url("acme-corp.test"), "company", screenshot=True)
    assert outcome.ok, outcome.message
    data = outcome.data
    assert data["name"] == "Acme Corp"
    assert data["description"] == "Acme Corp makes widgets for revenue teams."
    assert data["emails"] == ["hello@acme-corp.test"]
    assert data["phones"] == ["+14155550100"]
    assert data["socials"] == {
        "linkedin": "https://www.linkedin.com/company/acme-corp",
        "twitter": "https://x.com/acme_corp",
    }
    assert data["address"] == "1 Market St, San Francisco, US"
    assert data["careers_url"] == f"http://acme-corp.test:{sites.port}/careers"
    assert data["logo"] == f"http://acme-corp.test:{sites.port}/logo.png"
    assert {"WordPress", "jQuery"} <= set(data["technologies"])
    assert outcome.screenshot[:3] == b"\xff\xd8\xff"  # a JPEG


def test_javascript_rendered_page(scraper, sites):
    outcome = scraper.scrape(sites.url("rendered.test", "/js"), "company")
    assert outcome.ok, outcome.message
    assert outcome.data["name"] == "Rendered"
    assert outcome.data["description"] == "Rendered renders in JavaScript."
    assert outcome.data["emails"] == ["sales@rendered.test"]
    assert outcome.data["socials"] == {"github": "https://github.com/Rendered"}
    assert "React" in outcome.data["technologies"]


def test_team_page_people(scraper, sites):
    outcome = scraper.scrape(sites.url("people.test", "/team"), "team")
    assert outcome.ok
    assert outcome.data["people"] == [
        {
            "name": "Ada Lovelace",
            "title": "Chief Executive Officer",
            "linkedin": "https://www.linkedin.com/in/ada-lovelace",
        },
        {"name": "Grace Hopper", "title": "VP Engineering", "linkedin": ""},
    ]
    assert outcome.data["emails"] == ["team@example.org"]


def test_generic_page_text_is_plain(scraper, sites):
    outcome = scraper.scrape(sites.url("plain.test"), "generic")
    assert outcome.ok
    assert outcome.data["title"] == "Plain | Widgets for revenue teams"
    assert outcome.data["meta"]["description"] == "Plain makes widgets for revenue teams."
    assert "Nice" in outcome.data["text"] and "<script" not in outcome.data["text"]
    assert {"url": f"http://plain.test:{sites.port}/careers", "text": "Careers"} in outcome.data["links"]


def test_slow_page_within_the_limit(scraper, sites):
    outcome = scraper.scrape(sites.url("slow.test", "/slow"), "company")
    assert outcome.ok and outcome.data["name"] == "Slow"
    assert outcome.elapsed_ms >= 1500


def test_404_is_final_and_500_is_retried(scraper, sites):
    missing = scraper.scrape(sites.url("gone.test", "/missing"), "company")
    assert (missing.ok, missing.error_kind, missing.http_status) == (False, "http", 404)
    assert missing.message == "The site answered 404 Not Found."
    assert sites.hits[("gone.test", "/missing")] == 1
    broken = scraper.scrape(sites.url("broken.test", "/error"), "company")
    assert (broken.ok, broken.http_status, broken.attempts) == (False, 500, 3)
    assert sites.hits[("broken.test", "/error")] == 3


def test_redirect_chain_is_followed(scraper, sites):
    outcome = scraper.scrape(sites.url("hops.test", "/redirect/4"), "company")
    assert outcome.ok
    assert outcome.final_url == sites.url("hops.test", "/")
    assert [p for h, p in sites.log if h.startswith("hops.test") and p.startswith("/redirect")] == [
        "/redirect/4",
        "/redirect/3",
        "/redirect/2",
        "/redirect/1",
    ]


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/to-loopback", "loopback"), ("/to-metadata", "cloud metadata"), ("/to-other-port", "loopback")],
)
def test_redirect_into_the_network_is_refused(scraper, sites, path, reason):
    outcome = scraper.scrape(sites.url("evil.test", path), "company")
    assert (outcome.ok, outcome.error_kind) == (False, "blocked")
    assert reason in outcome.message
    # The redirect target never received a request (the server logs every Host it is asked for).
    assert [h for h, _ in sites.log if not h.startswith("evil.test")] == []


def test_redirect_to_an_allowlisted_address(app, scraper, sites, monkeypatch):
    monkeypatch.setitem(app.config["MORKET"], "SCRAPE_ALLOWLIST", [*sites.allowlist, f"127.0.0.1:{sites.port}"])
    from morket.scraping.service import scraper as make

    outcome = make().scrape(sites.url("friendly.test", "/to-loopback"), "company")
    assert outcome.ok, outcome.message
    assert outcome.final_url == f"http://127.0.0.1:{sites.port}/"


def test_sub_requests_into_the_network_are_refused(scraper, sites):
    outcome = scraper.scrape(sites.url("sneaky.test", "/sneaky"), "company")
    assert outcome.ok
    assert set(outcome.blocked) == {
        "http://169.254.169.254/latest/meta-data/iam",
        f"http://127.0.0.1:{sites.port}/",
        f"http://[::1]:{sites.port}/",
    }
    assert [h for h, _ in sites.log if not h.startswith("sneaky.test")] == []


def test_direct_private_urls_are_refused_before_the_browser(scraper, sites):
    outcome = scraper.scrape(f"http://127.0.0.1:{sites.port}/", "company")
    assert (outcome.error_kind, outcome.attempts) == ("blocked", 0)
    assert scraper.scrape("http://169.254.169.254/latest/meta-data/", "company").error_kind == "blocked"
    assert scraper.scrape("file:///etc/passwd", "company").error_kind == "blocked"
    assert sites.log == []


def test_page_that_never_finishes_loading(scraper, sites):
    assert scraper.scrape(sites.url("before-hang.test"), "company").ok  # the browser is up
    started = time.monotonic()
    outcome = scraper.scrape(sites.url("forever.test", "/hang"), "company")
    assert (outcome.ok, outcome.error_kind) == (False, "timeout")
    assert outcome.message == "The page did not load within 8 seconds."
    assert time.monotonic() - started < 12
    assert scraper.scrape(sites.url("after-hang.test"), "company").ok


@pytest.mark.parametrize("path", ["/huge", "/huge-declared"])
def test_fifty_megabyte_page_is_cut_off(scraper, sites, path):
    assert scraper.scrape(sites.url("before-big.test"), "company").ok  # the browser is up
    started = time.monotonic()
    outcome = scraper.scrape(sites.url("big.test", path), "company")
    assert (outcome.ok, outcome.error_kind) == (False, "too_large")
    assert outcome.message == "The page is larger than 10 MB."
    assert time.monotonic() - started < 6
    assert scraper.scrape(sites.url("after-big.test"), "company").ok


def test_renderer_crash_is_survived(scraper, sites):
    pool = scraper.pool
    outcome = scraper.scrape(sites.url("crashy.test", "/crash"), "company")
    assert (outcome.ok, outcome.error_kind) == (False, "crashed")
    launches = pool.launches
    assert scraper.scrape(sites.url("after-crash.test"), "company").ok
    assert pool.launches == launches  # a tab crashed, not the browser


def test_killed_browser_is_relaunched(scraper, sites):
    pool = scraper.pool
    assert scraper.scrape(sites.url("one.test"), "company").ok
    launches = pool.launches
    pool._kill_browser_processes()  # what the watchdog does to a hung browser
    time.sleep(0.3)
    outcome = scraper.scrape(sites.url("two.test"), "company")
    assert outcome.ok, outcome.message
    assert pool.launches == launches + 1


def test_browser_and_page_are_reused(scraper, sites):
    pool = scraper.pool
    scraper.scrape(sites.url("warm.test"), "company")
    launches, page = pool.launches, pool._page
    for i in range(10):
        assert scraper.scrape(sites.url(f"reuse-{i}.test"), "company").ok
    assert pool.launches == launches
    assert pool._page is page


def test_context_is_recycled_with_a_new_fingerprint(app, db, scrape_settings, sites, monkeypatch):
    from morket.scraping.service import scraper as make

    monkeypatch.setitem(app.config["MORKET"], "SCRAPE_RECYCLE_PAGES", 3)
    scraper = make()
    contexts = set()
    for i in range(7):
        assert scraper.scrape(sites.url(f"recycle-{i}.test"), "company").ok
        contexts.add(id(scraper.pool._context))
    assert len(contexts) >= 3
    assert scraper.pool.launches == 1


def test_robots_txt_is_respected_unless_turned_off(app, scraper, sites, monkeypatch):
    outcome = scraper.scrape(sites.url("polite.test", "/private"), "company")
    assert (outcome.ok, outcome.error_kind) == (False, "robots")
    assert ("polite.test", "/private") not in sites.hits
    assert scraper.scrape(sites.url("polite.test", "/"), "company").ok
    assert sites.hits[("polite.test", "/robots.txt")] == 1  # cached per origin
    monkeypatch.setitem(app.config["MORKET"], "SCRAPE_RESPECT_ROBOTS", False)
    from morket.scraping.service import scraper as make

    assert make().scrape(sites.url("polite.test", "/private"), "company").ok


def test_per_domain_rate_limit(app, scraper, sites, monkeypatch):
    monkeypatch.setitem(app.config["MORKET"], "SCRAPE_DOMAIN_RATE", 5.0)
    monkeypatch.setitem(app.config["MORKET"], "SCRAPE_RESPECT_ROBOTS", False)
    from morket.scraping.service import scraper as make

    limited = make()
    started = time.monotonic()
    for i in range(11):
        # Different hosts, one registrable domain: the limit is the domain's.
        assert limited.scrape(sites.url(f"p{i}.limited.test"), "company").ok
    elapsed = time.monotonic() - started
    assert elapsed >= 1.75  # 5 per second with at most 2 at once: 11 pages span at least 9 intervals
    # The site's own clock: never more than 5 pages a second, from the first page on.
    arrivals = sorted(t for t, host, path in sites.times if host.endswith(".limited.test") and path == "/")
    assert len(arrivals) == 11
    # 11 pages need 9 token intervals after the first two (1.8 s); a page's request reaches the
    # site a little after its token was taken, by as much as a loaded machine delays it, so the
    # site's span is allowed 0.3 s less. Without the limit the 11 pages arrive within half a second.
    assert arrivals[-1] - arrivals[0] >= 1.5
    other = time.monotonic()
    assert limited.scrape(sites.url("unlimited.test"), "company").ok
    assert time.monotonic() - other < 1.5


def test_circuit_breaker_opens_for_a_failing_domain(scraper, sites):
    for _ in range(2):
        scraper.scrape(sites.url("down.test", "/error"), "company")
    outcome = scraper.scrape(sites.url("down.test", "/error"), "company")
    assert outcome.error_kind == "circuit_open"
    hits = sites.hits[("down.test", "/error")]
    assert hits == 5
    assert scraper.scrape(sites.url("up.test"), "company").ok


def test_pool_is_one_per_process(scraper):
    assert get_pool(scraper.pool.settings) is scraper.pool
