"""``make run``'s sandbox mode: when it turns on, the sandbox child it starts, and the UI label."""

from __future__ import annotations

import httpx
import pytest

from morket.devserver import DevServer


@pytest.mark.parametrize(
    ("env", "wanted"),
    [
        ({}, True),
        ({"MORKET_HUNTER_API_KEY": "real-key"}, False),
        ({"MORKET_APOLLO_URL": "https://apollo.internal"}, False),
        ({"MORKET_HUNTER_API_KEY": "real-key", "MORKET_SANDBOX_MODE": "true"}, True),
        ({"MORKET_SANDBOX_MODE": "off"}, False),
    ],
)
def test_sandbox_mode_is_on_by_default_only_without_provider_settings(env, wanted):
    assert DevServer(env).sandbox_wanted() is wanted


@pytest.mark.timeout(60)
def test_start_sandbox_runs_the_child_and_exports_urls_and_demo_keys():
    server = DevServer({"PATH": "/usr/bin:/bin", "MORKET_CLEARBIT_API_KEY": "sk-test-own-key"})
    try:
        assert server.start_sandbox()
        env = server.env
        assert env["MORKET_SANDBOX_MODE"] == "true"
        assert env["MORKET_HUNTER_API_KEY"] == "sandbox-hunter-key"
        assert env["MORKET_CLEARBIT_API_KEY"] == "sk-test-own-key"  # a configured key is kept
        resp = httpx.get(
            env["MORKET_HUNTER_URL"] + "/v2/email-verifier",
            params={"email": "valid.ada@acme.com", "api_key": env["MORKET_HUNTER_API_KEY"]},
        )
        assert resp.status_code == 200 and resp.json()["data"]["status"] == "valid"
        child = server.children["sandbox"]
    finally:
        server.stop_children()
    assert child.poll() is not None


def test_the_ui_labels_sandbox_mode(app, client):
    settings = app.config["MORKET"]
    before = settings.get("SANDBOX_MODE")
    try:
        settings["SANDBOX_MODE"] = True
        assert "Sandbox mode" in client.get("/login").get_data(as_text=True)
        settings["SANDBOX_MODE"] = False
        assert "Sandbox mode" not in client.get("/login").get_data(as_text=True)
    finally:
        settings["SANDBOX_MODE"] = before
