"""Enrichment runs as webhook events: cells completed on the Hunter sandbox, a cancel's run.finished,
and row.deleted naming only rows that existed."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from morket.enrichment import service as enrichment
from morket.tables import service as tables
from morket.webhooks.models import WebhookEvent
from tests.enrichment.test_engine_support import (
    cells,
    enrichment_column,
    finish_run,
    grant,
    people_table,
    run_rows,
)
from tests.webhooks.test_delivery import _drain, _endpoint, _table, independent_verify, library_verify


@pytest.fixture
def hunter(app, sandbox):
    """A clean sandbox and quick retries for the run, restored afterwards."""
    settings = app.config["MORKET"]
    saved = settings.get("ENRICHMENT_BACKOFF_SECONDS")
    settings["ENRICHMENT_BACKOFF_SECONDS"] = 0.05
    sandbox.reset()
    yield sandbox
    sandbox.reset()
    settings["ENRICHMENT_BACKOFF_SECONDS"] = saved


def _events(db, event_type):
    return list(
        db.session.scalars(select(WebhookEvent).where(WebhookEvent.type == event_type).order_by(WebhookEvent.id))
    )


def test_a_hunter_run_sends_cell_completed_for_every_final_cell(db, team, receiver, hook_settings, run_jobs, hunter):
    endpoint, secret = _endpoint(team, receiver.url, types=("enrichment.cell_completed",))
    grant(team.workspace, 10_000)
    table, ids = people_table(team.workspace, team["owner"], 40)
    column = enrichment_column(team.workspace, team["owner"], table, ids)
    db.session.commit()
    run = enrichment.start_run(team.workspace, team["owner"], table, column, scope="all")
    db.session.commit()
    # Queued cells are not news: nothing is sent before a cell ends.
    assert _events(db, "enrichment.cell_completed") == []
    finish_run(run.id)
    db.session.commit()

    expected = {r.row_id: r.state for r in run_rows(run.id)}
    assert len(expected) == 40 and set(expected.values()) <= {"success", "no_data", "error"}
    assert "success" in expected.values()  # the sandbox finds most people
    count = len(_events(db, "enrichment.cell_completed"))
    assert count >= 1
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= count)

    sent: dict[int, dict] = {}
    for got in receiver.received:
        assert independent_verify(secret, got.headers, got.body)
        payload = library_verify(secret, got.headers, got.body)
        assert payload["type"] == "enrichment.cell_completed"
        data = payload["data"]
        assert data["table"] == {"id": table.id, "name": table.name} and data["run_id"] == run.id
        assert data["count"] == len(data["cells"]) <= 500
        for item in data["cells"]:
            # States only: no value, no provider payload.
            assert set(item) == {"row_id", "column_id", "state", "provider"}
            assert item["row_id"] not in sent, "a cell is announced once"
            sent[item["row_id"]] = item
    assert {r: i["state"] for r, i in sent.items()} == expected
    assert {i["column_id"] for i in sent.values()} == {column.id}
    assert {i["provider"] for i in sent.values() if i["state"] == "success"} == {"hunter"}
    # Every delivered cell of the grid was announced, and no value or key travelled in a body.
    delivered = {r for r, (value, state) in cells(table, column.id).items() if state["status"] == "success"}
    assert delivered == {r for r, i in sent.items() if i["state"] == "success"} and delivered
    bodies = b" ".join(got.body for got in receiver.received)
    found = [json.dumps(value) for value, state in cells(table, column.id).values() if value]
    emails = [e for text in found for e in text.replace('"', " ").split() if "@" in e]
    assert emails and not any(e.encode() in bodies for e in emails)
    assert b"sandbox-hunter-key" not in bodies


def test_cell_completed_is_split_in_batches_of_the_row_batch(db, team, hook_settings, hunter, monkeypatch):
    monkeypatch.setitem(hook_settings, "WEBHOOK_ROW_BATCH", 7)
    _endpoint(team, "http://127.0.0.1:9/hooks", types=("enrichment.cell_completed",))
    grant(team.workspace, 10_000)
    table, ids = people_table(team.workspace, team["owner"], 20)
    column = enrichment_column(team.workspace, team["owner"], table, ids)
    run = enrichment.start_run(team.workspace, team["owner"], table, column, scope="all")
    db.session.commit()
    finish_run(run.id)
    events = _events(db, "enrichment.cell_completed")
    sizes = [len(e.payload["data"]["cells"]) for e in events]
    assert sizes and max(sizes) <= 7 and sum(sizes) == 20


def test_a_cancelled_run_sends_run_finished_with_its_counts(db, team, receiver, hook_settings, run_jobs, hunter):
    endpoint, secret = _endpoint(team, receiver.url, types=("run.finished",))
    grant(team.workspace, 10_000)
    table, ids = people_table(team.workspace, team["owner"], 12)
    column = enrichment_column(team.workspace, team["owner"], table, ids)
    run = enrichment.start_run(team.workspace, team["owner"], table, column, scope="all")
    db.session.commit()
    enrichment.cancel_run(team.workspace, team["owner"], run)
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 1)
    [got] = receiver.received
    assert independent_verify(secret, got.headers, got.body)
    data = json.loads(got.body)["data"]
    assert got.json["type"] == "run.finished"
    assert (data["id"], data["status"], data["table_id"], data["column_id"]) == (
        run.id,
        "cancelled",
        table.id,
        column.id,
    )
    assert (data["total"], data["cancelled"], data["succeeded"], data["credits_used"]) == (12, 12, 0, 0)


def test_row_deleted_names_only_rows_that_existed(db, team, receiver, hook_settings, run_jobs):
    _endpoint(team, receiver.url, types=("row.deleted",))
    table = _table(team)
    ids = tables.insert_rows(team.workspace, team["owner"], table, [{"Name": n} for n in ("Ada", "Grace", "Alan")])
    db.session.commit()
    gone = ids[2] + 1000
    assert tables.delete_rows(team.workspace, team["owner"], table, [ids[0], gone, ids[2]]) == 2
    # Nothing that exists: no event at all.
    assert tables.delete_rows(team.workspace, team["owner"], table, [gone, ids[0]]) == 0
    db.session.commit()
    _drain(db, run_jobs, receiver, lambda: len(receiver.received) >= 1)
    [got] = receiver.received
    assert got.json["type"] == "row.deleted"
    assert got.json["data"]["row_ids"] == [ids[0], ids[2]] and got.json["data"]["count"] == 2
