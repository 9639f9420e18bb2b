"""Account tests drive the app like browsers: one app context per request."""

from __future__ import annotations

import pytest

from tests.accounts.support import browser


@pytest.fixture
def client(app, db):
    """A browser-like client (see BrowserClient) on the test's rolled-back transaction."""
    return browser(app)
