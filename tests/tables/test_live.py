"""The live grid: writes are announced after commit (never on rollback), and the stream is the viewer's only."""

from __future__ import annotations

import json
import threading
import time

import pytest
import redis as redis_lib

from morket.runs import leases
from morket.tables import live, service
from morket.workspaces.models import Membership
from tests.factories import login
from tests.tables.conftest import _workspace_and_user


@pytest.fixture
def listener(services):
    """A Redis subscriber on every table's channel; ``take()`` returns the messages seen so far."""
    conn = redis_lib.Redis.from_url(services["redis"])
    pubsub = conn.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(live.channel(conn, 0)[:-1] + "*")  # this test run's Redis database only

    def take(wait: float = 0.5) -> list[dict]:
        got, ends = [], time.monotonic() + wait
        while time.monotonic() < ends:
            message = pubsub.get_message(timeout=0.05)
            if message and message["type"] == "pmessage":
                got.append(json.loads(message["data"]))
        return got

    yield take
    pubsub.close()
    conn.close()


def _stream(client, path: str, **headers) -> list[tuple[str, dict]]:
    resp = client.get(path, headers=headers)
    assert resp.status_code == 200, resp.status_code
    assert resp.mimetype == "text/event-stream"
    events = []
    for block in resp.get_data(as_text=True).split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_a_committed_edit_is_announced_once_with_its_rows(db, seeded, owner, listener):
    workspace, user = owner
    row_id = service.read_window(workspace, user, seeded, None, 5, 1)[0].id
    listener(0.1)
    service.update_cell(workspace, user, seeded, row_id, seeded.live_columns[0].id, "Acme live")
    assert listener(0.3) == [], "announced before the commit"
    db.session.commit()
    got = [m for m in listener() if m["table"] == seeded.id]
    assert [(m["kinds"], m["rows"]) for m in got] == [(["updated"], [row_id])]


def test_a_rolled_back_write_is_never_announced(db, seeded, owner, listener):
    workspace, user = owner
    ids = [r.id for r in service.read_window(workspace, user, seeded, None, 0, 3)]
    listener(0.1)
    service.delete_rows(workspace, user, seeded, ids)
    service.insert_rows(workspace, user, seeded, [{"Company": "Never"}])
    db.session.rollback()
    assert listener() == []


def test_rows_added_and_deleted_in_one_transaction_are_one_message(db, seeded, owner, listener):
    workspace, user = owner
    doomed = service.read_window(workspace, user, seeded, None, 10, 1)[0].id
    listener(0.1)
    added = service.insert_rows(workspace, user, seeded, [{"Company": "New"}])
    service.delete_rows(workspace, user, seeded, [doomed])
    db.session.commit()
    got = [m for m in listener() if m["table"] == seeded.id]
    assert len(got) == 1, got
    assert got[0]["kinds"] == ["created", "deleted"]
    assert got[0]["rows"] == sorted([*added, doomed])


def test_enrichment_cells_written_by_the_engine_are_announced(db, seeded, owner, listener):
    workspace, user = owner
    row_id = service.read_window(workspace, user, seeded, None, 0, 1)[0].id
    listener(0.1)
    leases.cells_written(seeded, 1, [{"row_id": row_id, "column_id": 1, "state": "done", "provider": "hunter"}])
    db.session.commit()
    got = [m for m in listener() if m["table"] == seeded.id]
    assert [(m["kinds"], m["rows"]) for m in got] == [(["cells"], [row_id])]


def test_the_stream_forwards_changes_and_ends_after_its_lifetime(app, db, client, seeded, owner, monkeypatch):
    workspace, user = owner
    monkeypatch.setitem(app.config["MORKET"], "LIVE_STREAM_SECONDS", 2)
    login(client, user)
    db.session.commit()

    def later() -> None:
        time.sleep(0.8)
        with app.app_context():
            live.publish(seeded.id, ["updated"], [42])

    writer = threading.Thread(target=later)
    writer.start()
    began = time.monotonic()
    events = _stream(client, f"/w/{workspace.slug}/tables/{seeded.id}/live")
    writer.join()
    assert time.monotonic() - began < 5
    names = [name for name, _ in events]
    assert names == ["hello", "change", "bye"], events
    assert events[1][1]["rows"] == [42] and events[1][1]["table"] == seeded.id


def test_a_client_that_missed_a_change_is_told_at_once(app, db, client, seeded, owner, monkeypatch):
    workspace, user = owner
    monkeypatch.setitem(app.config["MORKET"], "LIVE_STREAM_SECONDS", 1)
    login(client, user)
    db.session.commit()
    first = live.publish(seeded.id, ["updated"], [1])
    live.publish(seeded.id, ["deleted"], [2])
    events = _stream(client, f"/w/{workspace.slug}/tables/{seeded.id}/live", **{"Last-Event-ID": str(first)})
    assert [name for name, _ in events][:2] == ["hello", "change"]
    assert events[1][1]["kinds"] == ["missed"]
    # Up to date: nothing to catch up on.
    events = _stream(client, f"/w/{workspace.slug}/tables/{seeded.id}/live", **{"Last-Event-ID": str(first + 1)})
    assert [name for name, _ in events] == ["hello", "bye"]


def test_another_workspace_gets_404_and_nothing_else(app, db, client, seeded, stranger, owner):
    other_workspace, other_user = stranger
    workspace, _ = owner
    login(client, other_user)
    db.session.commit()
    # Their own workspace's URL with this table's id, and this workspace's URL: both 404.
    for slug in (other_workspace.slug, workspace.slug):
        resp = client.get(f"/w/{slug}/tables/{seeded.id}/live")
        assert resp.status_code == 404
        assert b"event:" not in resp.data


def test_a_viewer_may_watch_and_a_signed_out_browser_may_not(app, db, client, seeded, owner, monkeypatch):
    workspace, _ = owner
    monkeypatch.setitem(app.config["MORKET"], "LIVE_STREAM_SECONDS", 1)
    resp = client.get(f"/w/{workspace.slug}/tables/{seeded.id}/live")
    assert resp.status_code in (302, 401, 404) and b"event:" not in resp.data
    _, viewer = _workspace_and_user(db, "viewer")
    db.session.add(Membership(workspace_id=workspace.id, user_id=viewer.id, role="viewer"))
    login(client, viewer)
    db.session.commit()
    assert [name for name, _ in _stream(client, f"/w/{workspace.slug}/tables/{seeded.id}/live")] == ["hello", "bye"]


def test_streams_are_bounded_per_process(app, db, client, seeded, owner, monkeypatch):
    workspace, user = owner
    login(client, user)
    db.session.commit()
    monkeypatch.setitem(app.config["MORKET"], "LIVE_STREAMS", 1)
    monkeypatch.setitem(app.config["MORKET"], "LIVE_STREAM_SECONDS", 1)
    held = live.SLOTS.take(1)
    assert held is not None
    try:
        resp = client.get(f"/w/{workspace.slug}/tables/{seeded.id}/live")
        assert resp.status_code == 503
        assert "scroll" in resp.get_data(as_text=True)
    finally:
        held()
    assert live.SLOTS.open == 0
    assert [name for name, _ in _stream(client, f"/w/{workspace.slug}/tables/{seeded.id}/live")] == ["hello", "bye"]
    assert live.SLOTS.open == 0, "the stream gave its slot back"


def test_a_csv_import_into_an_open_table_is_announced_when_it_commits(db, owner, listener):
    import io

    from morket.dataops import service as dataops
    from morket.dataops import tasks

    workspace, user = owner
    table = service.create_table(workspace, user, "Leads", columns=[{"name": "Email", "type": "email"}])
    (email,) = (c.id for c in table.live_columns)
    run = dataops.upload_import(workspace, user, io.BytesIO(b"mail\nann@beta.io\nbob@gamma.io\n"), "leads.csv")
    dataops.start_import(workspace, user, run, table=table, mapping=[{"source": 0, "target": email}])
    db.session.commit()
    listener(0.1)
    assert tasks.run_import(run.id).status == "done"
    got = [m for m in listener() if m["table"] == table.id]
    assert [m["kinds"] for m in got] == [["import"]]
