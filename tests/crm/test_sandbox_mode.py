"""make run's sandbox mode serves both CRM sandboxes and points Morket at them as an OAuth client."""

from __future__ import annotations

import os

import httpx

from morket.config import load_settings
from morket.crm.providers import SPECS
from morket.devserver import DevServer


def test_sandbox_mode_starts_the_crm_sandboxes(tmp_path):
    server = DevServer({**os.environ, "MORKET_VAR_DIR": str(tmp_path), "MORKET_SANDBOX_MODE": "true"})
    try:
        assert server.start_sandbox()
        settings = load_settings(
            {k: v for k, v in server.env.items() if k.startswith("MORKET_")} | {"MORKET_ENV": "test"}
        )
        for spec in SPECS.values():
            assert spec.configured(settings) and spec.is_sandbox(settings)
            query = {"client_id": spec.setting(settings, "CLIENT_ID"), "redirect_uri": "http://127.0.0.1:5000/cb"}
            consent = httpx.get(spec.authorize_url(settings), params=query, timeout=10)
            assert consent.status_code == 200 and f"{spec.label} sandbox (demo data)" in consent.text
        assert settings["SANDBOX_MODE"] is True
    finally:
        server.stop_children()
