"""Enrichment fixtures shared by the page and API tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def quick(app, sandbox):
    """Fast retries and a clean sandbox for each test; the settings are restored afterwards."""
    settings = app.config["MORKET"]
    saved = {k: settings.get(k) for k in ("ENRICHMENT_BACKOFF_SECONDS", "ENRICHMENT_CONFIRM_CREDITS")}
    settings["ENRICHMENT_BACKOFF_SECONDS"] = 0.05
    sandbox.reset()
    yield settings
    sandbox.reset()
    settings.update(saved)
