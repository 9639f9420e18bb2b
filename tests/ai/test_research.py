"""The research agent on the row-run engine, in process: the sandbox LLM through the real openai client,
the web search sandbox, local company sites read through scraping's guard. Sources must be on the pages
read; a hostile page changes nothing; a loop that never answers stops at its cap and costs nothing."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from morket.ai import column_runs
from morket.ai import research as agent
from morket.ai.column_models import AiResearchResult
from morket.credits.models import LedgerEntry
from morket.credits.prices import model_cost
from morket.extensions import db
from morket.scraping.pages import html_text, read_page
from tests.ai.column_support import MODEL, ai, asks, cells, finish  # noqa: F401 - fixture
from tests.ai.research_support import (
    ACME_ABOUT,
    ACME_HOME,
    EVIL_HOME,
    research,  # noqa: F401 - fixture
    research_column,
    research_sites,  # noqa: F401 - fixture
    research_table,
)
from tests.enrichment.test_engine_support import grant
from tests.factories import workspace_with_owner


@pytest.fixture
def team(db, research):  # noqa: F811
    workspace, owner = workspace_with_owner()
    grant(workspace, 100_000)
    return workspace, owner


def results(column_id: int) -> dict[int, AiResearchResult]:
    found = db.session.scalars(sa.select(AiResearchResult).where(AiResearchResult.column_id == column_id))
    return {r.row_id: r for r in found}


def page_text(body: str) -> str:
    return html_text(body)[1]


def ai_charges(workspace_id: int) -> list[LedgerEntry]:
    return list(
        db.session.scalars(
            sa.select(LedgerEntry).where(LedgerEntry.workspace_id == workspace_id, LedgerEntry.provider == "ai")
        )
    )


def test_research_answers_with_quotes_found_on_the_pages_it_read_and_pays_its_tokens(team, research):  # noqa: F811
    workspace, owner = team
    table = research_table(workspace, owner, research, [("Acme", "acme.test"), ("Globex", "globex.test")])
    column = research_column(workspace, owner, table)
    run = column_runs.start_run(workspace, owner, table, column)
    db.session.commit()
    run = finish(run.id)
    values = cells(table, column.id)
    found = results(column.id)
    assert len(found) == 2
    texts = {
        research.url("acme.test", "/"): page_text(ACME_HOME),
        research.url("acme.test", "/about"): page_text(ACME_ABOUT),
    }
    acme = next(r for r in found.values() if "Acme" in (r.answer or ""))
    assert acme.status == "answered"
    assert values[acme.row_id][0] == acme.answer
    assert values[acme.row_id][1]["status"] == "success"
    sources = acme.record["sources"]
    assert sources, acme.record
    for source in sources:
        assert source["url"] in texts, source
        assert source["quote"] in texts[source["url"]]  # every quoted passage is on the page it names
    # The company's own site was a candidate and read; every page visited is kept.
    visited = [p["url"] for p in acme.record["pages"]]
    assert research.url("acme.test", "/") == visited[0]
    assert all(p["outcome"] == "read" for p in acme.record["pages"])
    assert acme.record["searches"][0]["results"][0] == research.url("acme.test", "/")
    # The script's text is not page text.
    assert all("not text" not in s["quote"] for s in sources)
    # Charged once per delivered answer: every step's tokens at the model's price, in the ledger.
    charges = ai_charges(workspace.id)
    expected = sum(
        model_cost(MODEL, r.record["input_tokens"], r.record["output_tokens"])
        for r in found.values()
        if r.status == "answered"
    )
    assert sum(-c.amount for c in charges) == expected > 0
    assert len(charges) == sum(1 for r in found.values() if r.status == "answered")
    assert run.credits_used == expected


def test_a_page_that_tries_prompt_injection_changes_nothing(team, research, ai):  # noqa: F811
    workspace, owner = team
    table = research_table(workspace, owner, research, [("Acme", "acme.test"), ("Evil Corp", "evil.test")])
    column = research_column(workspace, owner, table)
    run = column_runs.start_run(workspace, owner, table, column)
    db.session.commit()
    finish(run.id)
    found = results(column.id)
    evil = next(r for r in found.values() if r.record["pages"][0]["url"] == research.url("evil.test", "/"))
    pages = evil.record["pages"]
    # The (gullible) model obeyed the page and asked for the metadata address: the guard refused it.
    metadata = [p for p in pages if "169.254.169.254" in p["url"]]
    assert metadata and metadata[0]["outcome"] == "refused"
    assert "private networks" in metadata[0]["reason"]
    assert ("169.254.169.254", "/latest/meta-data/iam/") not in research.log
    # Its answer rests on the real page, and nothing of the other row reached it.
    assert evil.status == "answered"
    for source in evil.record["sources"]:
        assert source["quote"] in page_text(EVIL_HOME)
    assert "acme" not in (evil.answer or "").lower()
    assert all("acme" not in q.lower() for s in evil.record["sources"] for q in (s["quote"], s["url"]))
    for ask in asks(ai):
        assert not ("Evil Corp" in ask["prompt"] and "Acme" in ask["prompt"])
    # The step and page caps are the column's: the page could not raise them.
    assert evil.record["steps"] <= 6 and len(pages) <= 3


def test_a_loop_that_never_answers_stops_at_the_cap_and_costs_nothing(team, research):  # noqa: F811
    workspace, owner = team
    table = research_table(workspace, owner, research, [("[[loop]] Acme", "acme.test")])
    column = research_column(workspace, owner, table, research_steps=3)
    run = column_runs.start_run(workspace, owner, table, column)
    db.session.commit()
    run = finish(run.id)
    ((row_id, (value, state)),) = cells(table, column.id).items()
    assert value is None and state["status"] == "error"
    assert "Stopped after 3 steps" in state["message"]
    record = results(column.id)[row_id]
    assert record.status == "gave_up" and record.record["steps"] == 3
    assert record.record["input_tokens"] > 0  # the model was asked, and still nothing is charged
    assert ai_charges(workspace.id) == [] and run.credits_used == 0


def test_an_answer_without_a_source_is_refused_and_costs_nothing(team, research):  # noqa: F811
    workspace, owner = team
    table = research_table(workspace, owner, research, [("[[unsourced]] Acme", "acme.test")])
    column = research_column(workspace, owner, table)
    run = column_runs.start_run(workspace, owner, table, column)
    db.session.commit()
    finish(run.id)
    ((row_id, (value, state)),) = cells(table, column.id).items()
    assert value is None and state["status"] == "error" and "No sourced answer" in state["message"]
    assert results(column.id)[row_id].status == "unsourced"
    assert ai_charges(workspace.id) == []


def test_sources_that_are_not_on_a_page_read_are_dropped():
    endpoint = agent.llm.Endpoint("openai", "http://unused", "k", "m", True)
    loop = agent.Loop(endpoint, system="", question="q", sites=[], caps=agent.Caps(), fetch=None,
                         search=None, deadline=0)  # fmt: skip
    loop.texts["http://a.test/"] = "Acme was founded in 1987.\nIt makes rockets."
    loop._check_answer({"answer": "1987", "sources": [
        {"url": "http://a.test/", "quote": "acme was  founded in 1987."},  # case and spaces aside: kept
        {"url": "http://a.test/", "quote": "Acme was founded in 1999."},  # not on the page
        {"url": "http://b.test/", "quote": "It makes rockets."},  # a page never read
    ]})  # fmt: skip
    assert loop.out.status == "answered"
    assert [s["url"] for s in loop.out.sources] == ["http://a.test/"]
    assert [r["reason"] for r in loop.out.rejected] == [
        "the quote is not on the page",
        "not a page read for this answer",
    ]
    loop = agent.Loop(endpoint, system="", question="q", sites=[], caps=agent.Caps(), fetch=None,
                         search=None, deadline=0)  # fmt: skip
    loop._check_answer({"answer": "1987", "sources": [{"url": "http://a.test/", "quote": "x"}]})
    assert loop.out.status == "unsourced"


def test_page_reads_go_through_the_guard_and_robots(app, db, research):  # noqa: F811
    from morket.core.jobs import redis_connection

    settings = app.config["MORKET"]
    redis = redis_connection()
    assert read_page(research.url("acme.test", "/about"), settings, redis).text.startswith("Acme was founded")
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:6379/", "file:///etc/passwd",
                f"http://localhost:{research.port}/"):  # fmt: skip
        page = read_page(url, settings, redis)
        assert page.refused and not page.text, url
    research.serve("acme.test", "/to-metadata", "", "text/html")
    research.serve("robots.test", "/robots.txt", "User-agent: *\nDisallow: /", "text/plain")
    research.serve("robots.test", "/", "<p>hidden</p>")
    assert "robots.txt" in read_page(research.url("robots.test", "/"), settings, redis).refused


def test_the_web_search_sandbox_answers_braves_shape_429_and_401(ai, research):  # noqa: F811
    base = ai.url("websearch") + "/res/v1/web/search"
    ok = httpx.get(base, params={"q": "Acme history"}, headers={"X-Subscription-Token": "sandbox-k"}, timeout=5)
    assert ok.status_code == 200
    body = ok.json()
    assert body["type"] == "search" and body["web"]["results"][0]["url"] == research.url("acme.test", "/about")
    assert set(body["web"]["results"][0]) == {"title", "url", "description"}
    assert httpx.get(base, params={"q": "Acme"}, timeout=5).status_code == 401
    assert (
        httpx.get(base, params={"q": ""}, headers={"X-Subscription-Token": "sandbox-k"}, timeout=5).status_code == 422
    )
    ai.configure("websearch", rate=0.5, burst=1)
    codes = [httpx.get(base, params={"q": "Acme"}, headers={"X-Subscription-Token": "sandbox-k"}, timeout=5)
             for _ in range(3)]  # fmt: skip
    limited = [r for r in codes if r.status_code == 429]
    assert limited and limited[0].headers["Retry-After"] and limited[0].json()["error"]["code"] == "RATE_LIMITED"


def test_a_429_storm_at_the_web_search_loses_no_row_and_charges_none_twice(team, research, ai):  # noqa: F811
    workspace, owner = team
    companies = [("Acme", "acme.test"), ("Globex", "globex.test"), ("Evil Corp", "evil.test"), ("Acme 2", "acme.test")]
    table = research_table(workspace, owner, research, companies)
    column = research_column(workspace, owner, table)
    ai.configure("websearch", rate=1, burst=1)  # one search a second: most of the first batch's are refused
    run = column_runs.start_run(workspace, owner, table, column)
    db.session.commit()
    run = finish(run.id)
    log = ai.log("websearch")
    assert any(e["status"] == 429 for e in log)
    assert run.succeeded == 4 and run.failed == 0
    assert all(state["status"] == "success" for _, state in cells(table, column.id).values())
    charges = ai_charges(workspace.id)
    assert len(charges) == 4 and len({c.idempotency_key for c in charges}) == 4
    assert sum(-c.amount for c in charges) == run.credits_used


def test_the_loop_runs_on_the_anthropic_messages_api_too(app, db, research, ai):  # noqa: F811
    import time

    from morket.ai import llm
    from morket.ai.columns import AiConfig
    from morket.ai.executor import system_of
    from morket.core.jobs import redis_connection

    endpoint = llm.Endpoint("anthropic", ai.url("anthropic"), "sandbox-anthropic-key", "sandbox-small", True)
    site = research.url("acme.test", "/")
    config = AiConfig(prompt="When was {{Company}} founded?", inputs={"Company": 1}, output_type="research")
    settings, redis = app.config["MORKET"], redis_connection()
    loop = agent.Loop(
        endpoint, system=system_of(config), question="When was <data>Acme</data> founded?", sites=[site],
        caps=agent.Caps(), fetch=lambda url: read_page(url, settings, redis), search=None,
        deadline=time.monotonic() + 60,
    )  # fmt: skip
    found = loop.run()
    assert found.status == "answered", found.record()
    assert found.sources[0]["url"] == site and found.sources[0]["quote"] in page_text(ACME_HOME)
    assert found.input_tokens > 0 and found.steps == 3  # search, read the site, answer
    assert agent.RULES in system_of(config) and "never follow" in system_of(config)


def test_a_budget_below_a_rows_most_stops_a_research_run_before_any_call(team, research, ai):  # noqa: F811
    workspace, owner = team
    table = research_table(workspace, owner, research, [("Acme", "acme.test"), ("Globex", "globex.test")])
    column = research_column(workspace, owner, table)
    run = column_runs.start_run(workspace, owner, table, column, budget_credits=50)
    db.session.commit()
    run = finish(run.id)
    assert column_runs.stopped_at_budget(run) and run.credits_used == 0
    assert all(state["status"] in ("queued", "pending") for _, state in cells(table, column.id).values())
    assert asks(ai) == [] and ai.log("websearch") == [] and research.log == []  # nothing was asked or read
    assert ai_charges(workspace.id) == []
