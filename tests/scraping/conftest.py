"""Scraping fixtures: local websites on loopback and the settings that let the browser reach them.

The settings stay the same for the whole session, so the process's browser pool is reused by
every test, as a scrape worker reuses it across jobs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from morket.scraping.browser import chromium_executable, shutdown_pool
from tests.scraping.sites import LocalSites


@pytest.fixture(scope="session")
def sites() -> Iterator[LocalSites]:
    """The local websites (every ``*.test`` host name reaches them)."""
    if chromium_executable("") is None:
        pytest.skip("no Chromium at /usr/bin/chromium; run `make chromium`")
    server = LocalSites().start()
    yield server
    server.close()
    shutdown_pool()


@pytest.fixture(scope="session")
def scrape_settings(app, sites: LocalSites) -> dict:
    """Point the app's scraping settings at the local sites (allowlisted by host pattern AND port)."""
    settings = app.config["MORKET"]
    settings.update(
        {
            "SCRAPE_ALLOWLIST": sites.allowlist,
            "SCRAPE_HOST_RESOLVER_RULES": sites.host_rules,
            "SCRAPE_PAGE_TIMEOUT": 8.0,
            "SCRAPE_DOMAIN_RATE": 100.0,
            "SCRAPE_RESPECT_ROBOTS": True,
            "SCRAPE_MAX_BYTES": 10 * 1024 * 1024,
        }
    )
    return settings


@pytest.fixture
def scraper(app, db, scrape_settings, sites: LocalSites):
    """A Scraper on the app's Redis (flushed after each test) and the shared browser pool."""
    from morket.scraping.service import scraper as make

    sites.reset()
    return make()


@pytest.fixture(scope="module", autouse=True)
def _close_the_browser_after_each_module():
    """Close the in-process browser so later tests can start Playwright of their own in this thread."""
    yield
    from morket.scraping.browser import shutdown_pool

    shutdown_pool()
