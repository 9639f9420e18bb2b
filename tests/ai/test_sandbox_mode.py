"""``make run``'s sandbox mode makes the sandbox LLM the platform's default model endpoint."""

from __future__ import annotations

import pytest

from morket.ai import llm
from morket.devserver import DevServer


@pytest.mark.timeout(60)
def test_sandbox_mode_points_the_default_endpoint_at_the_sandbox_llm():
    server = DevServer({"PATH": "/usr/bin:/bin"})
    try:
        assert server.start_sandbox()
        env = server.env
        assert (env["MORKET_AI_KIND"], env["MORKET_AI_MODEL"], env["MORKET_AI_ALLOW_LOOPBACK"]) == (
            "openai", "sandbox-small", "true",
        )  # fmt: skip
        endpoint = llm.Endpoint(
            kind=env["MORKET_AI_KIND"], base_url=env["MORKET_AI_BASE_URL"], api_key=env["MORKET_AI_API_KEY"],
            model=env["MORKET_AI_MODEL"], platform=True,
        )  # fmt: skip
        answer = llm.complete(endpoint, system="", prompt="<data>Acme Corp</data>", schema={"enum": ["Acme", "Other"]})
        assert answer.value == "Acme"
    finally:
        server.stop_children()


@pytest.mark.timeout(60)
def test_an_operators_own_default_endpoint_is_kept():
    server = DevServer({"PATH": "/usr/bin:/bin", "MORKET_AI_BASE_URL": "https://llm.internal/v1"})
    try:
        assert server.start_sandbox()
        assert server.env["MORKET_AI_BASE_URL"] == "https://llm.internal/v1"
        assert "MORKET_AI_API_KEY" not in server.env
    finally:
        server.stop_children()


@pytest.mark.timeout(60)
def test_sandbox_mode_gives_the_research_agent_the_web_search_sandbox():
    import httpx

    server = DevServer({"PATH": "/usr/bin:/bin"})
    try:
        assert server.start_sandbox()
        env = server.env
        resp = httpx.get(
            env["MORKET_WEBSEARCH_URL"] + "/res/v1/web/search",
            params={"q": "acme"},
            headers={"X-Subscription-Token": env["MORKET_WEBSEARCH_API_KEY"]},
            timeout=5,
        )
        assert resp.status_code == 200 and resp.json()["type"] == "search"
    finally:
        server.stop_children()
