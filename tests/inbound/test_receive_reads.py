"""The reads a payload's request skips: the source's lookup also learns whether the table has a fresh
sorted view and whether anyone subscribes to row.created, and the write reads neither when not."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import event, select

from morket.extensions import db as ext_db
from morket.inbound import service
from morket.tables import service as tables
from morket.tables.models import View
from morket.webhooks import service as webhooks
from morket.webhooks.models import WebhookEvent
from tests.inbound.conftest import post


@pytest.fixture
def statements(app):
    """Every SQL statement sent while the test runs."""
    sent: list[str] = []
    engine = ext_db.engine

    def listen(conn, cursor, statement, params, context, executemany):
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    yield sent
    event.remove(engine, "before_cursor_execute", listen)


def _records(start: int, count: int) -> list[dict]:
    return [
        {"email": f"lead{i}@example.com", "person": {"name": f"Lead {i}"}, "company": {"size": i}}
        for i in range(start, start + count)
    ]


def test_a_plain_table_is_written_without_reading_views_or_endpoints(client, db, team, source, statements):
    made, secret = source
    db.session.commit()
    statements.clear()
    resp = post(client, made, _records(0, 20), secret=secret)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["data"]["inserted"] == 20
    # The source's lookup asks both questions; no statement reads views or endpoints themselves.
    assert not [s for s in statements if s.lstrip().startswith("SELECT table_views.")]
    assert not [s for s in statements if s.lstrip().startswith("SELECT webhook_endpoints.")]


def test_the_table_and_its_columns_come_with_the_source_and_the_lock_reads_only_its_row(
    client, db, team, source, statements
):
    workspace, owner, table = team
    made, secret = source
    db.session.commit()
    assert post(client, made, _records(0, 1), secret=secret).status_code == 200  # the app's first request
    db.session.refresh(made)  # the test's own copy, read again here rather than in the count
    statements.clear()
    resp = post(client, made, _records(1, 100), secret=secret)
    assert resp.status_code == 200, resp.get_json()
    sent = [s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]
    # The source's lookup, the table's row lock, the insert (with the counters): three statements.
    assert len(sent) == 3, "\n".join(s[:100] for s in sent)
    assert "table_columns" in sent[0] and "FOR UPDATE" not in sent[0]
    assert "FOR UPDATE" in sent[1] and "table_columns" not in sent[1]
    assert len(tables.read_window(workspace, owner, table, None, 0, 200)) == 101


def test_a_sorted_view_with_a_fresh_order_is_marked_stale_and_shows_the_new_rows(client, db, team, source):
    workspace, owner, table = team
    made, secret = source
    size = next(c for c in table.live_columns if c.name == "Employees")
    view = tables.create_view(workspace, owner, table, "Biggest", sort=[{"column_id": size.id, "dir": "desc"}])
    tables.ensure_view_order(workspace, table, view)
    db.session.commit()
    assert db.session.scalar(select(View.order_stale).where(View.id == view.id)) is False

    resp = post(client, made, _records(0, 5), secret=secret)
    assert resp.status_code == 200, resp.get_json()
    db.session.expire_all()
    assert db.session.scalar(select(View.order_stale).where(View.id == view.id)) is True
    table = tables.get_table_or_404(workspace, table.id)
    view = db.session.get(View, view.id)
    rows = tables.read_window(workspace, owner, table, view, 0, 10)
    assert [row.values(table)[size.id] for row in rows] == [4, 3, 2, 1, 0]


def test_a_subscribed_endpoint_hears_of_the_rows(client, db, team, source, app, monkeypatch):
    workspace, owner, _table = team
    made, secret = source
    monkeypatch.setitem(app.config["MORKET"], "WEBHOOK_ALLOW_HTTP_LOOPBACK", True)
    webhooks.create_endpoint(workspace, owner, "http://127.0.0.1:9/hook", ["row.created"])
    db.session.commit()

    resp = post(client, made, _records(0, 3), secret=secret)
    assert resp.status_code == 200, resp.get_json()
    events = list(db.session.scalars(select(WebhookEvent).where(WebhookEvent.workspace_id == workspace.id)))
    assert [e.type for e in events] == ["row.created"]
    assert events[0].payload["data"]["count"] == 3


def test_an_endpoint_of_another_workspace_hears_nothing(client, db, team, source, app, monkeypatch):
    from tests.factories import workspace_with_owner

    made, secret = source
    monkeypatch.setitem(app.config["MORKET"], "WEBHOOK_ALLOW_HTTP_LOOPBACK", True)
    other, other_owner = workspace_with_owner(name="Other Co")
    webhooks.create_endpoint(other, other_owner, "http://127.0.0.1:9/hook", ["row.created"])
    db.session.commit()

    resp = post(client, made, _records(0, 2), secret=secret)
    assert resp.status_code == 200, resp.get_json()
    assert db.session.scalar(select(WebhookEvent.id).where(WebhookEvent.workspace_id == other.id)) is None


def test_rows_posted_are_found_by_search_through_one_wake_not_an_outbox_row(client, db, team, source, run_jobs):
    from rq import Queue

    from morket.core.jobs import redis_connection
    from morket.core.models import OutboxMessage
    from morket.search import service as search
    from morket.search import tasks as search_tasks

    workspace, owner, table = team
    made, secret = source
    db.session.commit()
    search_tasks.sync_search()  # the sweep watches the new table
    db.session.commit()
    started = time.monotonic()
    for i in range(3):
        resp = post(
            client, made, {"email": f"wake{i}@searchable.example", "person": {"name": f"Wake {i}"}}, secret=secret
        )
        assert resp.status_code == 200
    quick = time.monotonic() - started < search.WAKE_MS / 1000
    assert db.session.scalar(db.select(db.func.count()).select_from(OutboxMessage)) == 0  # no outbox row a request
    queued = [
        j for j in Queue("default", connection=redis_connection()).get_jobs() if j.args[0].endswith("sync_search")
    ]
    assert queued and queued[0].args[1] == [table.id]
    if quick:  # three requests inside the wake's window enqueue one sync
        assert len(queued) == 1
    run_jobs()
    db.session.expire_all()
    found = search.search(workspace, "owner", "wake2@searchable.example")
    assert [r.row_id for r in found.rows] and found.total >= 1


def test_the_sample_is_rewritten_when_the_shape_changes_not_on_every_request(client, db, team, source):
    made, secret = source
    first = {"email": "one@example.com", "person": {"name": "One"}}
    assert post(client, made, first, secret=secret).status_code == 200
    db.session.refresh(made)
    assert made.sample == first
    # Same shape: the kept sample stays (it is refreshed every SAMPLE_EVERY requests).
    assert post(client, made, {"email": "two@example.com", "person": {"name": "Two"}}, secret=secret).status_code == 200
    db.session.refresh(made)
    assert made.sample == first and made.requests_accepted == 2
    # A new field: the payload becomes the sample at once, so the mapping editor offers it.
    third = [{"email": "three@example.com", "person": {"name": "Three"}, "title": "CTO"}]
    assert post(client, made, third, secret=secret).status_code == 200
    db.session.refresh(made)
    assert made.sample == third
    for i in range(service.SAMPLE_EVERY - 3):
        post(client, made, [{"email": f"n{i}@example.com", "person": {"name": "N"}, "title": "X"}], secret=secret)
    db.session.refresh(made)
    assert made.requests_accepted == service.SAMPLE_EVERY and made.sample == third
    last = [{"email": "last@example.com", "person": {"name": "Last"}, "title": "CEO"}]
    assert post(client, made, last, secret=secret).status_code == 200
    db.session.refresh(made)
    assert made.sample == last  # the SAMPLE_EVERY-th request since the count started refreshes it


def test_counters_are_kept_when_the_rows_cannot_go_in_as_arrays(client, db, team):
    """A multi-select column takes the row-by-row insert: the counters are written right after it."""
    workspace, owner, _ = team
    table = tables.create_table(
        workspace,
        owner,
        "Tagged",
        columns=[
            {"name": "Email", "type": "email"},
            {"name": "Tags", "type": "multi_select", "config": {"options": ["a", "b"]}},
        ],
    )
    made, secret = service.create_source(workspace, owner, table, "Tags in")
    service.update_source(workspace, owner, made, columns={"Email": "$.email", "Tags": "$.tags"})
    db.session.commit()
    body = [{"email": "t1@example.com", "tags": ["a"]}, {"email": "t2@example.com", "tags": ["a", "b"]}]
    resp = post(client, made, body, secret=secret)
    assert resp.status_code == 200 and resp.get_json()["data"]["inserted"] == 2
    db.session.refresh(made)
    assert (made.requests_accepted, made.rows_inserted, made.recent[0]["inserted"], made.sample) == (1, 2, 2, body)
