"""robots.txt as sites write it: longest match wins, wildcards, and Crawl-delay slowing the domain down."""

from __future__ import annotations

import pytest

from morket.scraping.politeness import MAX_CRAWL_DELAY, RobotsRules

RULES = """\
User-agent: *
Disallow: /private
Allow: /private/public
Disallow: /*.pdf$
Crawl-delay: 0.5

User-agent: OtherBot
Disallow: /
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/", True),
        ("/about", True),
        ("/private", False),
        ("/private/accounts", False),
        # The longer Allow beats the shorter Disallow (RFC 9309), whatever their order.
        ("/private/public", True),
        ("/private/public/report.html", True),
        # "*" matches any characters, "$" anchors the end.
        ("/files/report.pdf", False),
        ("/report.pdf", False),
        ("/files/report.pdf?download=1", True),
        ("/files/report.pdfx", True),
    ],
)
def test_rules_as_written(path, allowed):
    assert RobotsRules(RULES).allows(f"https://www.acme.com{path}") is allowed


def test_groups_crawl_delay_and_request_rate():
    rules = RobotsRules(RULES)
    assert rules.crawl_delay() == 0.5
    assert not rules.allows("https://www.acme.com/", "OtherBot")
    assert RobotsRules("User-agent: *\nRequest-rate: 1/4\n").crawl_delay() == 4.0
    # A site cannot hold a worker for an hour: the delay honoured is bounded.
    assert RobotsRules("User-agent: *\nCrawl-delay: 3600\n").crawl_delay() == MAX_CRAWL_DELAY
    assert RobotsRules("User-agent: *\nDisallow:\n").crawl_delay() is None
    assert RobotsRules("User-agent: *\nCrawl-delay: soon\n").crawl_delay() is None


def test_no_file_allows_everything_and_an_unreadable_one_nothing():
    assert RobotsRules("").allows("https://acme.com/anything")
    assert not RobotsRules("\x00deny").allows("https://acme.com/")


def test_scraper_follows_allow_and_wildcard_rules(scraper, sites):
    host = "rules.test"
    sites.serve(host, "/robots.txt", RULES.replace("Crawl-delay: 0.5\n", ""), "text/plain")
    page = "<!doctype html><html><head><title>Acme</title></head><body><p>hello</p></body></html>"
    for path in ("/private/public/team", "/private/accounts", "/brochure.pdf"):
        sites.serve(host, path, page)

    assert scraper.scrape(sites.url(host, "/private/public/team"), "generic").ok
    refused = [scraper.scrape(sites.url(host, p), "generic") for p in ("/private/accounts", "/brochure.pdf")]
    assert [(o.ok, o.error_kind) for o in refused] == [(False, "robots"), (False, "robots")]
    assert (host, "/private/accounts") not in sites.hits
    assert (host, "/brochure.pdf") not in sites.hits
    assert sites.hits[(host, "/robots.txt")] == 1


def test_crawl_delay_spaces_the_sites_pages(scraper, sites):
    # The fixture allows 100 pages a second per domain; the site asks for one a second.
    sites.serve("slow.test", "/robots.txt", "User-agent: *\nCrawl-delay: 1\n", "text/plain")
    for _ in range(4):
        assert scraper.scrape(sites.url("slow.test", "/"), "company").ok
    arrivals = sorted(t for t, host, path in sites.times if host == "slow.test" and path == "/")
    assert len(arrivals) == 4
    # Tokens one second apart (no burst of two when a delay is asked): 3 s from the first page
    # to the fourth. A request reaches the site a little after its token was taken, by as much
    # as a loaded machine delays it, so the site's span is allowed 0.3 s less. Without the
    # delay the four pages arrive within about a second.
    assert arrivals[-1] - arrivals[0] >= 2.7, arrivals
