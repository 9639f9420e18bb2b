"""The charging rule: a workspace pays once per value a column delivers, and nothing else.

Expectations are worked out from the sandbox's own data (which people it finds, which addresses
are outdated, what the verifier says) and checked against the sandbox's request log, the cells
and the ledger, never against Morket's attempt log alone.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from morket.credits.prices import PRICES
from morket.enrichment import executor, service
from morket.enrichment.config import EnrichmentConfig
from morket.enrichment.models import EnrichmentRunRow
from morket.providers.sandboxes import data
from tests.enrichment.test_engine_support import (
    attempts,
    cells,
    enrichment_column,
    finish_run,
    grant,
    ledger,
    people_rows,
    people_table,
    reload,
    run_rows,
)
from tests.factories import login, workspace_with_owner

OUTDATED = 0.3  # the share of people each finder answers with an outdated (invalid) address
VERIFIER = {"operation": "hunter.email_verifier", "input": "email", "field": "status", "accept": ["valid"]}


@pytest.fixture
def fast(app, sandbox):
    """Quick retries and a fresh sandbox for each test."""
    settings = app.config["MORKET"]
    saved = settings.get("ENRICHMENT_BACKOFF_SECONDS")
    settings["ENRICHMENT_BACKOFF_SECONDS"] = 0.05
    sandbox.reset()
    yield sandbox
    sandbox.reset()
    settings["ENRICHMENT_BACKOFF_SECONDS"] = saved


def _expected_waterfall(rows: list[dict]) -> list[tuple[str | None, str | None, list[str]]]:
    """Per row, from the sandbox's data: (delivering provider, email delivered, emails to verify)."""
    expected = []
    for row in rows:
        person = (row["First name"], row["Last name"], row["Domain"])
        if not data.person_found(*person):
            expected.append((None, None, []))  # neither finder knows the person
            continue
        true_email = data.person(*person)["email"]
        verified: list[str] = []
        outcome: tuple[str | None, str | None] = (None, None)
        for provider in ("hunter", "apollo"):
            email = data.outdated_email(true_email) if data.outdated(provider, OUTDATED, *person) else true_email
            if email not in verified:
                verified.append(email)
                if data.verification(email)[0] == "valid":
                    outcome = (provider, email)
                    break
        expected.append((*outcome, verified))
    return expected


def test_waterfall_charges_the_price_once_per_delivered_value_and_verifies_each_email_once(db, fast, sandbox):
    sandbox.configure("hunter", invalid_emails=OUTDATED)
    sandbox.configure("apollo", invalid_emails=OUTDATED)
    workspace, owner = workspace_with_owner()
    grant(workspace, 10_000)
    count = 80
    table, ids = people_table(workspace, owner, count)
    column = enrichment_column(
        workspace,
        owner,
        table,
        ids,
        steps=[{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
        validation=VERIFIER,
    )
    rows = people_rows(count)
    expected = _expected_waterfall(rows)
    # The rows cover every case the rule must handle.
    delivered_by = Counter(provider for provider, _, _ in expected)
    assert delivered_by["hunter"] and delivered_by["apollo"] and delivered_by[None]
    assert any(provider is None and len(v) == 1 for provider, _, v in expected if v), "no repeated rejected email"
    assert any(provider is None and len(v) == 2 for provider, _, v in expected), "no two rejected emails"

    estimate = service.estimate_run(workspace, table, column, scope="all")
    price = PRICES["hunter.email_finder"] + PRICES["hunter.email_verifier"]
    assert PRICES["apollo.people_match"] + PRICES["hunter.email_verifier"] == price
    assert (estimate.per_row, estimate.min_per_value, estimate.max_credits) == (price, price, count * price)

    run = service.start_run(workspace, owner, table, column, scope="all", confirm=True)
    finish_run(run.id)
    run = reload(run)

    # The cells: the expected email where a provider's value was accepted, nothing elsewhere.
    got = cells(table, column.id)
    row_ids = sorted(got)
    for row_id, (provider, email, _) in zip(row_ids, expected, strict=True):
        value, state = got[row_id]
        if provider is None:
            assert value is None and state["status"] == "no_data", (row_id, value, state)
        else:
            assert (value["value"], value["provider"], state["status"]) == (email, provider, "success")

    # The sandbox's own log: exactly one verifier call per distinct email of a row, no more.
    verifier_calls = Counter(e["params"]["email"] for e in sandbox.log("hunter") if e["operation"] == "email_verifier")
    wanted = Counter(email for _, _, emails in expected for email in emails)
    assert verifier_calls == wanted
    assert set(verifier_calls.values()) == {1}

    # The ledger: the column's price once per delivered value, nothing for rows with no data.
    delivered = {row_id for row_id, (provider, _, _) in zip(row_ids, expected, strict=True) if provider}
    entries = ledger(workspace.id, run.id)
    assert sorted(e.row_id for e in entries) == sorted(delivered)
    assert all(e.kind == "debit" and e.amount == -price for e in entries)
    assert -sum(e.amount for e in entries) == price * len(delivered) == run.credits_used
    assert run.succeeded == len(delivered) and run.no_data == count - len(delivered)
    # Each entry points at the run, the row, the column and the attempt that delivered the value.
    logged = {a.id: a for a in attempts(run.id)}
    for entry in entries:
        attempt = logged[entry.attempt_id]
        assert (entry.run_id, entry.column_id) == (run.id, column.id)
        assert (attempt.row_id, attempt.outcome, attempt.provider) == (entry.row_id, "hit", entry.provider)
        assert got[entry.row_id][0]["provider"] == entry.provider
    # Rejected values are still in the attempt log, with what the provider's call cost.
    rejected = [a for a in logged.values() if a.outcome == "hit" and a.row_id not in delivered]
    assert rejected and all(a.cost == PRICES[a.operation] for a in rejected)


def test_the_pages_show_the_rule_the_ledger_follows(client, db, fast, sandbox):
    workspace, owner = workspace_with_owner()
    grant(workspace, 1_000)
    table, ids = people_table(workspace, owner, 12)
    column = enrichment_column(
        workspace,
        owner,
        table,
        ids,
        steps=[{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
        validation=VERIFIER,
    )
    login(client, owner)
    html = client.get(
        f"/w/{workspace.slug}/tables/{table.id}/enrichment/{column.id}/estimate?scope=all",
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)
    assert "up to <strong data-estimate-credits>36</strong> credits, charged only for values delivered" in html
    assert "data-value-price>3<" in html

    run = service.start_run(workspace, owner, table, column, scope="all")
    finish_run(run.id)
    run = reload(run)
    assert run.succeeded and run.credits_used == 3 * run.succeeded
    page = client.get(f"/w/{workspace.slug}/runs/{run.id}").get_data(as_text=True)
    assert f"data-credits-used>{run.credits_used}<" in page
    assert f"{run.succeeded} values delivered at 3 credits each" in page
    history = client.get(f"/w/{workspace.slug}/credits").get_data(as_text=True)
    for entry in ledger(workspace.id, run.id):
        assert f"Value delivered to row {entry.row_id}, column {column.id}" in history


def test_a_run_whose_stored_key_cannot_be_read_ends_its_cells_failed_with_the_reason(app, db, fast, sandbox):
    from morket.credentials.service import create_credential
    from morket.credits.service import balance

    workspace, owner = workspace_with_owner()
    grant(workspace, 100)
    table, ids = people_table(workspace, owner, 6)
    create_credential(workspace, owner, "hunter", "sk-test-own-key-1234")
    column = enrichment_column(workspace, owner, table, ids)
    run = service.start_run(workspace, owner, table, column, scope="all")
    db.session.commit()  # as the request that started it did
    settings = app.config["MORKET"]
    master = settings["MASTER_KEY"]
    settings["MASTER_KEY"] = os.urandom(32)  # the key was stored under another master key
    try:
        executor.work(run.id, 0, budget=5)
    finally:
        settings["MASTER_KEY"] = master
    run = reload(run)
    assert run.status == "failed" and "cannot be read" in run.pause_reason
    assert (run.done, run.failed, run.total) == (6, 6, 6)
    for value, state in cells(table, column.id).values():
        assert value is None
        assert state["status"] == "error" and "Hunter key cannot be read" in state["message"]
    assert {(r.status, r.state) for r in run_rows(run.id)} == {("done", "error")}
    assert "cannot be read" in run_rows(run.id)[0].message
    assert sandbox.log("hunter") == [] and ledger(workspace.id, run.id) == [] and balance(workspace.id) == 100
    assert executor.reconcile()["jobs"] == 0  # nothing is left for a worker to pick up


# --- the website scrape: Morket's own browser workers, charged at the listed price -----------------


@pytest.fixture
def local_sites(app, services):
    """The scraping tests' local websites, and the settings that let the browser reach them."""
    from morket.scraping.browser import chromium_executable, shutdown_pool
    from tests.scraping.sites import LocalSites

    if chromium_executable("") is None:
        pytest.skip("no Chromium at /usr/bin/chromium; run `make chromium`")
    settings = app.config["MORKET"]
    names = (
        "SCRAPE_ALLOWLIST",
        "SCRAPE_HOST_RESOLVER_RULES",
        "SCRAPE_PAGE_TIMEOUT",
        "SCRAPE_DOMAIN_RATE",
        "SCRAPE_RESPECT_ROBOTS",
    )
    saved = {name: settings.get(name) for name in names}
    sites = LocalSites().start()
    settings.update(
        SCRAPE_ALLOWLIST=sites.allowlist,
        SCRAPE_HOST_RESOLVER_RULES=sites.host_rules,
        SCRAPE_PAGE_TIMEOUT=8.0,
        SCRAPE_DOMAIN_RATE=100.0,
        # robots.txt is the scraping tests' subject; its kept-alive client would outlive these sites.
        SCRAPE_RESPECT_ROBOTS=False,
    )
    yield sites
    shutdown_pool()
    sites.close()
    settings.update(saved)


def _scrape_queue(app) -> None:
    """Be the scrape worker: run every job the scrape queue holds, in this thread."""
    from rq import Queue
    from rq.job import Job

    from morket.core.jobs import QUEUE_SCRAPE

    conn = app.extensions["morket_redis"]
    queue = Queue(QUEUE_SCRAPE, connection=conn)
    while (job_id := conn.lpop(queue.key)) is not None:
        job = Job.fetch(job_id.decode(), connection=conn)
        job.func(*job.args, **job.kwargs)


def test_a_website_scrape_costs_its_listed_price_per_delivered_scrape_and_nothing_when_it_fails(
    app, db, fast, local_sites
):
    from morket.tables import service as tables
    from tests.scraping.sites import company_name

    workspace, owner = workspace_with_owner()
    grant(workspace, 100)
    table = tables.create_table(
        workspace, owner, "Accounts", columns=[{"name": "Account", "type": "text"}, {"name": "Site", "type": "text"}]
    )
    sites = {"co-1.test": "/", "co-2.test": "/", "gone.test": "/missing"}
    row_ids = tables.insert_rows(
        workspace, owner, table, [{"Account": h, "Site": local_sites.url(h, path)} for h, path in sites.items()]
    )
    site_column = next(c for c in table.live_columns if c.name == "Site")
    config = EnrichmentConfig.model_validate(
        {"steps": [{"operation": "website.scrape"}], "target": "name", "inputs": {"domain": site_column.id}}
    )
    column = tables.add_column(workspace, owner, table, "Company name", "enrichment", config=config.model_dump())
    price = PRICES["website.scrape"]
    assert price > 0
    estimate = service.estimate_run(workspace, table, column, scope="all")
    assert (estimate.per_row, estimate.max_credits) == (price, 3 * price)
    run = service.start_run(workspace, owner, table, column, scope="all")
    # Worker and scrape worker in turn until the run ends: by the clock, not by a count of turns,
    # since on a loaded machine a scrape can miss its answer and wait out a retry.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        executor.work(run.id, 0, budget=5)
        _scrape_queue(app)
        if reload(run).finished:
            break
        time.sleep(0.2)
    run = reload(run)
    assert run.status == "completed", service.run_progress(run)
    got = cells(table, column.id)
    delivered = row_ids[:2]
    for row_id, host in zip(delivered, ["co-1.test", "co-2.test"], strict=True):
        assert got[row_id][0]["value"] == company_name(host)
    assert got[row_ids[2]][0] is None and got[row_ids[2]][1]["status"] == "no_data"
    # The listed price once per delivered scrape; nothing for the page that was not there; no 0s.
    entries = ledger(workspace.id, run.id)
    assert sorted(e.row_id for e in entries) == sorted(delivered)
    assert all(e.amount == -price and e.operation == "website.scrape" for e in entries)
    assert run.credits_used == price * len(delivered) == -sum(e.amount for e in entries)
    hits = {a.id for a in attempts(run.id) if a.outcome == "hit"}
    assert {e.attempt_id for e in entries} == hits
    assert not db.session.scalar(
        sa.select(sa.func.count()).where(EnrichmentRunRow.run_id == run.id, EnrichmentRunRow.result.is_not(None))
    )
