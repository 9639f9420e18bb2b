"""The reads a payload's request skips: the source's lookup also learns whether the table has a fresh
sorted view and whether anyone subscribes to row.created, and the write reads neither when not."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select

from morket.extensions import db as ext_db
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
