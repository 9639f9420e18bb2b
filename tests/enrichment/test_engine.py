"""The run engine in process, against the provider sandboxes: values, states, ledger, cache, retries."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.core.throttle import CircuitBreaker
from morket.enrichment import executor, service
from morket.enrichment.models import EnrichmentRun, EnrichmentRunRow
from morket.providers.sandboxes import data
from morket.runs import jobs, leases, limits
from morket.tables import service as tables
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
from tests.factories import workspace_with_owner


@pytest.fixture
def fast(app, sandbox):
    """Quick retries, a fresh sandbox and a closed breaker for each test."""
    settings = app.config["MORKET"]
    saved = {k: settings.get(k) for k in ("ENRICHMENT_BACKOFF_SECONDS", "ENRICHMENT_CONCURRENCY", "BASE_URL")}
    settings["ENRICHMENT_BACKOFF_SECONDS"] = 0.05
    sandbox.reset()
    yield sandbox
    sandbox.reset()
    settings.update(saved)


@pytest.fixture
def people(db, fast):
    workspace, owner = workspace_with_owner()
    grant(workspace, 10_000)
    table, ids = people_table(workspace, owner, 30)
    return workspace, owner, table, ids


def finish(run: EnrichmentRun, *, rounds: int = 20) -> None:
    """Work the run in this process until it is over (as its jobs would)."""
    finish_run(run.id, rounds=rounds)


def expected_found(rows: list[dict]) -> list[bool]:
    return [data.person_found(r["First name"], r["Last name"], r["Domain"]) for r in rows]


def test_run_fills_found_cells_and_charges_exactly_the_hits(db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids)
    from morket.credits.service import balance

    before = balance(workspace.id)
    estimate = service.estimate_run(workspace, table, column, scope="all")
    assert (estimate.rows, estimate.max_credits) == (30, 60)
    run = service.start_run(workspace, owner, table, column, scope="all")
    assert all(state["status"] == "queued" for _, state in cells(table, column.id).values())

    finish(run)

    run = reload(run)
    found = expected_found(people_rows(30))
    got = cells(table, column.id)
    assert [value is not None for value, _ in got.values()] == found
    for value, state in got.values():
        assert state["run_id"] == run.id
        assert state["status"] == ("success" if value else "no_data")
        if value:
            assert (
                value["provider"] == "hunter" and "@" in value["value"] and value["fields"]["email"] == value["value"]
            )
    titles = cells(table, ids["Title"])
    for (value, _), (title, _) in zip(got.values(), titles.values(), strict=True):
        assert (title is not None) == (value is not None)
        if value:
            assert title == value["fields"]["position"]
    # The sandbox's own log: one finder call per row, no more.
    assert len([e for e in sandbox.log("hunter") if e["operation"] == "email_finder"]) == 30
    # Counters, attempts and the ledger agree with each other and with the balance.
    hits = sum(found)
    assert (run.status, run.total, run.done, run.succeeded, run.no_data, run.failed) == (
        "completed",
        30,
        30,
        hits,
        30 - hits,
        0,
    )
    logged = attempts(run.id)
    assert len(logged) == 30 and all(a.latency_ms >= 0 and a.provider == "hunter" for a in logged)
    assert sum(a.cost for a in logged) == 2 * hits == run.credits_used
    debits = ledger(workspace.id, run.id)
    assert sum(-e.amount for e in debits) == 2 * hits
    assert len({e.idempotency_key for e in debits}) == len(debits) == hits
    assert {e.attempt_id for e in debits} == {a.id for a in logged if a.outcome == "hit"}
    assert balance(workspace.id) == before - 2 * hits
    assert service.run_progress(run)["finished"] is True


def test_fields_land_in_typed_columns_as_their_own_types(db, people, sandbox):
    """One run writes a number, an email, a multi select and JSON: each stored as its column's type."""
    from morket.providers.sandboxes.data import TITLES

    workspace, owner, table, ids = people
    typed = {
        "Score": tables.add_column(workspace, owner, table, "Score", "number"),
        "Work email": tables.add_column(workspace, owner, table, "Work email", "email"),
        "Roles": tables.add_column(
            workspace, owner, table, "Roles", "multi_select", config={"options": [t for t, _ in TITLES]}
        ),
        "Raw": tables.add_column(workspace, owner, table, "Raw", "json"),
    }
    column = enrichment_column(
        workspace,
        owner,
        table,
        ids,
        outputs=[
            {"field": "score", "column_id": typed["Score"].id},
            {"field": "email", "column_id": typed["Work email"].id},
            {"field": "position", "column_id": typed["Roles"].id},
            {"field": "score", "column_id": typed["Raw"].id},
        ],
    )
    finish(service.start_run(workspace, owner, table, column, scope="all"))
    got = cells(table, column.id)
    assert any(value for value, _ in got.values())
    for row_id, (value, _) in got.items():
        score, email = cells(table, typed["Score"].id)[row_id][0], cells(table, typed["Work email"].id)[row_id][0]
        roles, raw = cells(table, typed["Roles"].id)[row_id][0], cells(table, typed["Raw"].id)[row_id][0]
        if not value:
            assert (score, email, roles, raw) == (None, None, None, None)
            continue
        fields = value["fields"]
        assert isinstance(score, Decimal) and score == Decimal(str(fields["score"]))
        assert email == fields["email"]
        assert roles == [fields["position"]]  # a text[] of one option
        assert raw == fields["score"] and not isinstance(raw, str)  # JSON: the number, not its text


def test_quick_search_finds_rows_by_what_their_enrichment_cells_show(db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids, outputs=[])
    finish(service.start_run(workspace, owner, table, column, scope="all"))
    found = {row_id: value["value"] for row_id, (value, _) in cells(table, column.id).items() if value}
    row_id, email = next(iter(found.items()))
    rows, total = tables.search_rows(workspace, owner, table, email.upper())
    assert total == 1 and [r.id for r in rows] == [row_id]  # the email is in no other column
    _, none = tables.search_rows(workspace, owner, table, "provider")  # the cell's keys are not its text
    assert none == 0


def test_second_run_is_served_from_the_cache_and_costs_nothing(db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids)
    finish(service.start_run(workspace, owner, table, column, scope="all"))
    calls = len(sandbox.log("hunter"))
    again = service.start_run(workspace, owner, table, column, scope="all")
    finish(again)
    assert len(sandbox.log("hunter")) == calls
    logged = attempts(again.id)
    assert all(a.cached and a.cost == 0 for a in logged)
    assert reload(again).credits_used == 0 and ledger(workspace.id, again.id) == []


def test_empty_scope_reruns_only_empty_cells(db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids)
    finish(service.start_run(workspace, owner, table, column, scope="all"))
    empty = sum(1 for v, _ in cells(table, column.id).values() if v is None)
    estimate = service.estimate_run(workspace, table, column, scope="empty")
    assert estimate.rows == empty


def test_a_value_the_user_typed_is_kept_unless_overwrite(db, people, sandbox):
    workspace, owner, table, ids = people
    found = expected_found(people_rows(30))
    row_ids = sorted(cells(table, ids["Title"]))
    typed = row_ids[found.index(True)]
    tables.update_cell(workspace, owner, table, typed, ids["Title"], "Typed by hand")
    column = enrichment_column(workspace, owner, table, ids)
    finish(service.start_run(workspace, owner, table, column, scope="all"))
    assert cells(table, ids["Title"])[typed][0] == "Typed by hand"
    assert cells(table, column.id)[typed][0]["value"]  # the enrichment cell itself is filled

    # A value the enrichment wrote earlier is its own to replace; with overwrite, typed values go too.
    other = enrichment_column(workspace, owner, table, ids, overwrite=True)
    finish(service.start_run(workspace, owner, table, other, scope="all"))
    value = cells(table, other.id)[typed][0]
    assert cells(table, ids["Title"])[typed][0] == value["fields"]["position"]


def test_condition_skips_rows_without_calling(db, people, sandbox):
    workspace, owner, table, ids = people
    row_ids = sorted(cells(table, ids["Domain"]))
    for row_id in row_ids[:10]:
        tables.update_cell(workspace, owner, table, row_id, ids["Domain"], "")
    condition = {"op": "and", "conditions": [{"column_id": ids["Domain"], "operator": "is_not_empty"}]}
    column = enrichment_column(workspace, owner, table, ids, condition=condition)
    run = service.start_run(workspace, owner, table, column, scope="all")
    assert (run.total, run.skipped, run.done) == (30, 10, 10)
    finish(run)
    states = cells(table, column.id)
    assert [states[r][1]["status"] for r in row_ids[:10]] == ["skipped"] * 10
    assert len(sandbox.log("hunter")) == 20
    assert {r.state for r in run_rows(run.id)[:10]} == {"skipped"}


def test_waterfall_verifies_and_falls_through_to_the_next_provider(db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(
        workspace,
        owner,
        table,
        ids,
        steps=[{"operation": "hunter.email_finder"}, {"operation": "apollo.people_match"}],
        validation={"operation": "hunter.email_verifier", "input": "email", "field": "status", "accept": ["valid"]},
    )
    run = service.start_run(workspace, owner, table, column, scope="all")
    finish(run)
    logged = attempts(run.id)
    verifier = [a for a in logged if a.operation == "hunter.email_verifier"]
    candidates = [a for a in logged if a.operation != "hunter.email_verifier" and a.outcome == "hit"]
    # Every distinct candidate value was verified once (a repeat reuses the verdict), and the
    # verifier calls match the sandbox's log.
    assert 0 < len(verifier) <= len(candidates)
    assert len([e for e in sandbox.log("hunter") if e["operation"] == "email_verifier"]) == len(verifier)
    for value, state in cells(table, column.id).values():
        if value is not None:
            assert data.verification(value["value"])[0] == "valid"
            assert state["provider"] == value["provider"]
    # Apollo was only asked for rows Hunter could not answer with a verified email.
    apollo_rows = {a.row_id for a in logged if a.provider == "apollo"}
    hunter_accepted = {
        a.row_id
        for a in verifier
        if a.outcome == "hit" and any(c.row_id == a.row_id and c.provider == "hunter" for c in candidates)
    }
    assert apollo_rows and not apollo_rows & {
        r
        for r in hunter_accepted
        if cells(table, column.id)[r][0] and cells(table, column.id)[r][0]["provider"] == "hunter"
    }
    run = reload(run)
    # One charge per delivered value: the delivering step's price plus the verifier's.
    assert sum(-e.amount for e in ledger(workspace.id, run.id)) == run.credits_used == 3 * run.succeeded


def test_own_key_costs_no_credits_but_is_recorded(db, people, sandbox):
    from morket.credentials.service import create_credential
    from morket.credits.service import balance

    workspace, owner, table, ids = people
    create_credential(workspace, owner, "hunter", "sk-test-own-key-9f3e")
    before = balance(workspace.id)
    column = enrichment_column(workspace, owner, table, ids)
    assert service.estimate_run(workspace, table, column, scope="all").max_credits == 0
    run = service.start_run(workspace, owner, table, column, scope="all")
    finish(run)
    assert balance(workspace.id) == before
    hits = [a for a in attempts(run.id) if a.outcome == "hit"]
    # The attempt log keeps what each call cost at the provider (billed to the workspace's account).
    assert hits and all(a.key_source == "own" and a.cost == 2 for a in hits)
    entries = ledger(workspace.id, run.id)
    assert len(entries) == len(hits) == reload(run).succeeded
    assert all(e.kind == "usage" and e.amount == 0 and e.key_source == "own" for e in entries)
    assert reload(run).credits_used == 0
    assert {e["key_hint"] for e in sandbox.log("hunter")} == {"…9f3e"}


def test_cancel_ends_every_open_row_and_nothing_is_called(db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids)
    run = service.start_run(workspace, owner, table, column, scope="all")
    service.cancel_run(workspace, owner, run)
    executor.work(run.id, 0, budget=5)
    run = reload(run)
    assert (run.status, run.cancelled, run.done) == ("cancelled", 30, 30)
    assert sandbox.log("hunter") == []
    assert {state["status"] for _, state in cells(table, column.id).values()} == {"cancelled"}
    with pytest.raises(Conflict):
        service.cancel_run(workspace, owner, run)


def test_retryable_errors_are_retried_with_backoff_then_succeed(db, people, sandbox):
    workspace, owner, table, ids = people
    sandbox.configure("hunter", error_rate=0.3, fail_status=503)
    column = enrichment_column(workspace, owner, table, ids)
    run = service.start_run(workspace, owner, table, column, scope="all")
    finish(run)
    run = reload(run)
    log = sandbox.log("hunter")
    assert any(e["status"] == 503 for e in log)
    assert run.failed == 0 and run.done == 30
    assert [v is not None for v, _ in cells(table, column.id).values()] == expected_found(people_rows(30))
    failures = [a for a in attempts(run.id) if a.outcome == "retryable"]
    assert len(failures) == len([e for e in log if e["status"] == 503])
    assert sum(-e.amount for e in ledger(workspace.id, run.id)) == run.credits_used


def test_breaker_opens_and_no_call_reaches_the_provider_while_open(app, db, people, sandbox, services):
    workspace, owner, table, ids = people
    sandbox.configure("hunter", error_rate=1.0, fail_status=500)
    app.config["MORKET"]["ENRICHMENT_CONCURRENCY"] = 1
    try:
        column = enrichment_column(workspace, owner, table, ids)
        run = service.start_run(workspace, owner, table, column, scope="all")
        executor.work(run.id, 0, budget=3)
        breaker = CircuitBreaker(Redis.from_url(services["redis"]), "provider:hunter")
        assert breaker.state == "open"
        calls = len(sandbox.log("hunter"))
        assert calls == limits.BREAKER_FAIL_MAX
        executor.work(run.id, 0, budget=2)
        assert len(sandbox.log("hunter")) == calls, "a call reached the provider while its breaker was open"
        # Rows wait (retrying), none is lost or failed for good yet.
        rows = run_rows(run.id)
        assert {r.status for r in rows} == {"pending"} and reload(run).failed == 0
        assert {state["status"] for _, state in cells(table, column.id).values()} <= {"retrying", "queued"}
    finally:
        app.config["MORKET"]["ENRICHMENT_CONCURRENCY"] = 8
        Redis.from_url(services["redis"]).delete("morket:throttle:breaker:provider:hunter")


def test_redis_away_pauses_the_run_and_the_reconciler_resumes_it(app, db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids)
    run = service.start_run(workspace, owner, table, column, scope="all")
    real = app.extensions["morket_redis"]
    app.extensions["morket_redis"] = Redis(
        host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    try:
        executor.work(run.id, 0, budget=5)
        paused = reload(run)
        assert (paused.status, paused.pause_reason) == ("paused", leases.PAUSE_REDIS)
        assert {r.status for r in run_rows(run.id)} == {"pending"}
        assert executor.reconcile()["resumed"] == 0  # still away: stays paused
        assert reload(run).status == "paused"
    finally:
        app.extensions["morket_redis"] = real
    report = executor.reconcile()
    assert report["resumed"] == 1 and report["jobs"] == jobs.jobs_per_run()
    assert reload(run).status == "running"
    finish(run)
    assert reload(run).done == 30


def test_reconciler_requeues_expired_leases(db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids)
    run = service.start_run(workspace, owner, table, column, scope="all")
    claimed = leases.claim_rows(run.id, "dead-worker", 10, 60)
    assert len(claimed) == 10
    db.session.execute(
        sa.update(EnrichmentRunRow)
        .where(EnrichmentRunRow.run_id == run.id, EnrichmentRunRow.status == "leased")
        .values(lease_expires_at=sa.func.now() - sa.text("interval '1 second'"))
    )
    assert executor.reconcile()["leases"] == 10
    assert {r.status for r in run_rows(run.id)} == {"pending"}
    finish(run)
    run = reload(run)
    assert run.done == 30 and len({a.row_id for a in attempts(run.id)}) == 30


def test_clearbit_202_waits_for_the_callback_then_finishes(app, db, people, sandbox):
    from tests.support.sandbox import WebhookSink

    workspace, owner, table, ids = people
    sink = WebhookSink().start()
    app.config["MORKET"]["BASE_URL"] = sink.url("")
    sandbox.configure("clearbit", async_=True)
    try:
        email_col = tables.add_column(workspace, owner, table, "Email", "email")
        rows = sorted(cells(table, ids["Title"]))[:3]
        for i, row_id in enumerate(rows):
            tables.update_cell(workspace, owner, table, row_id, email_col.id, f"person{i}@company{i}.example.com")
        column = enrichment_column(
            workspace,
            owner,
            table,
            ids,
            steps=[{"operation": "clearbit.person"}],
            target="name",
            inputs={"email": email_col.id},
            outputs=[],
        )
        run = service.start_run(workspace, owner, table, column, scope="selected", row_ids=rows)
        executor.work(run.id, 0, budget=3)
        waiting = run_rows(run.id)
        assert {r.status for r in waiting} == {"awaiting_callback"}
        assert {cells(table, column.id)[r][1]["status"] for r in rows} == {"awaiting_callback"}
        import json

        hooks = sink.wait_for(3, timeout=10)
        for hook in hooks:
            payload = json.loads(hook["body"])
            assert hook["path"].startswith("/api/v1/enrichment/callbacks/clearbit")
            assert service.complete_callback("clearbit", payload["id"], payload) is not None
            assert service.complete_callback("clearbit", payload["id"], payload) is None  # a replay does nothing
        finish(run)
        run = reload(run)
        found = [cells(table, column.id)[r] for r in rows]
        assert run.done == 3 and run.failed == 0
        hits = [a for a in attempts(run.id) if a.outcome == "hit"]
        assert len(hits) == sum(1 for v, _ in found if v is not None)
        assert sum(-e.amount for e in ledger(workspace.id, run.id)) == 2 * len(hits) == run.credits_used
    finally:
        sink.stop()


def test_runs_and_attempts_of_another_workspace_are_not_found(db, people, sandbox):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids)
    run = service.start_run(
        workspace, owner, table, column, scope="selected", row_ids=sorted(cells(table, ids["Title"]))[:2]
    )
    other, other_owner = workspace_with_owner()
    with pytest.raises(NotFound):
        service.get_run_or_404(other, run.id)
    with pytest.raises(NotFound):
        service.list_attempts(other, run=run)
    with pytest.raises(NotFound):
        service.cancel_run(other, other_owner, run)
    with pytest.raises(NotFound):
        service.start_run(other, other_owner, table, column, scope="all")
    assert service.get_run_or_404(workspace, run.id) is run


def test_bad_requests_are_refused_with_a_message(db, people, app):
    workspace, owner, table, ids = people
    column = enrichment_column(workspace, owner, table, ids)
    with pytest.raises(ValidationFailed):
        service.start_run(workspace, owner, table, column, scope="everything")
    with pytest.raises(ValidationFailed):
        service.start_run(workspace, owner, table, column, scope="selected", row_ids=[])
    plain = next(c for c in table.live_columns if c.name == "Title")
    with pytest.raises(ValidationFailed):
        service.start_run(workspace, owner, table, plain, scope="all")
    app.config["MORKET"]["ENRICHMENT_CONFIRM_CREDITS"] = 10
    try:
        with pytest.raises(service.ConfirmationRequired) as refused:
            service.start_run(workspace, owner, table, column, scope="all")
        assert refused.value.estimate.max_credits == 60
        assert service.start_run(workspace, owner, table, column, scope="all", confirm=True).total == 30
    finally:
        app.config["MORKET"]["ENRICHMENT_CONFIRM_CREDITS"] = 500


def test_auto_run_starts_on_new_rows_only_for_auto_columns(db, people, sandbox):
    workspace, owner, table, ids = people
    assert service.on_rows_changed(table, [1, 2]) == []
    column = enrichment_column(workspace, owner, table, ids, auto_run=True)
    new = tables.insert_rows(workspace, owner, table, people_rows(2, offset=100))
    started = service.on_rows_changed(table, new)
    assert len(started) == 1 and started[0].scope == "auto" and started[0].total == 2
    finish(started[0])
    assert all(
        state["status"] in ("success", "no_data") for r, (_, state) in cells(table, column.id).items() if r in new
    )


def test_running_out_of_credits_pauses_and_resumes_after_a_grant(db, fast, sandbox):
    from morket.credits.service import balance

    workspace, owner = workspace_with_owner()
    grant(workspace, 10)
    table, ids = people_table(workspace, owner, 30)
    column = enrichment_column(workspace, owner, table, ids)
    run = service.start_run(workspace, owner, table, column, scope="all", confirm=True)
    executor.work(run.id, 0, budget=10)
    paused = reload(run)
    assert (paused.status, paused.pause_reason) == ("paused", leases.PAUSE_CREDITS)
    assert balance(workspace.id) >= 0
    # Only delivered values were paid for; rows whose hit could not be paid wait, none is lost.
    charged = -sum(e.amount for e in ledger(workspace.id, run.id))
    assert charged == paused.credits_used == 2 * paused.succeeded <= 10
    assert {r.status for r in run_rows(run.id)} <= {"pending", "done"}
    assert executor.reconcile()["resumed"] == 0
    grant(workspace, 1000)
    assert executor.reconcile()["resumed"] == 1
    finish(run)
    run = reload(run)
    assert run.done == 30 and run.failed == 0
    assert -sum(e.amount for e in ledger(workspace.id, run.id)) == run.credits_used == 2 * run.succeeded


def test_a_callback_that_never_comes_ends_the_cell_as_an_error(app, db, people, sandbox):
    from tests.support.sandbox import WebhookSink

    workspace, owner, table, ids = people
    sink = WebhookSink(status=500).start()  # the answer is posted nowhere useful
    app.config["MORKET"]["BASE_URL"] = sink.url("")
    sandbox.configure("clearbit", async_=True)
    try:
        email_col = tables.add_column(workspace, owner, table, "Email", "email")
        row_id = sorted(cells(table, ids["Title"]))[0]
        tables.update_cell(workspace, owner, table, row_id, email_col.id, "ada@company0.example.com")
        column = enrichment_column(
            workspace,
            owner,
            table,
            ids,
            steps=[{"operation": "clearbit.person"}],
            target="name",
            inputs={"email": email_col.id},
            outputs=[],
        )
        run = service.start_run(workspace, owner, table, column, scope="selected", row_ids=[row_id])
        executor.work(run.id, 0, budget=3)
        assert run_rows(run.id)[0].status == "awaiting_callback"
        db.session.execute(
            sa.update(EnrichmentRunRow)
            .where(EnrichmentRunRow.run_id == run.id)
            .values(lease_expires_at=sa.func.now() - sa.text("interval '1 second'"))
        )
        assert executor.reconcile()["callbacks"] == 1
        finish(run)
        value, state = cells(table, column.id)[row_id]
        assert value is None and state["status"] == "error" and "callback" in state["message"]
        assert reload(run).failed == 1 and ledger(workspace.id, run.id) == []
    finally:
        sink.stop()
