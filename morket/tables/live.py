"""The live grid: changes to a table's rows are announced to every open grid of it, after commit.

Every write of a table's rows passes through ``announce`` (registered with ``hooks`` for rows
created, updated and deleted by the grid, the API, paste and undo, and for rows other domains wrote;
called by the row-run engine for enrichment cells and by the CSV import). ``announce`` only notes
the table in the session; once the session's transaction commits, one message per table is
published on the Redis channel ``morket:live:<redis db>:<table id>`` with a per-table sequence number
(``INCR``), so a change is never announced and then rolled back, and a rollback drops what was
noted. A rolled-back savepoint inside a committed transaction may leave a note behind: the grids
then fetch their window once more and see the committed state.

The grid's stream (``live_views``) subscribes to the channel of one table, for one authorised
viewer, and forwards each message as a server-sent event whose id is the sequence number; a
client that reconnects with ``Last-Event-ID`` older than the table's sequence is told at once
that it missed something. Redis being down never fails a write: the publish is skipped (logged)
and the grids fall back to fetching on scroll and to the table's pulse.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("morket.tables.live")

PREFIX = "morket:live:"
# Row ids named in one message at most; past this a message says "many" (``rows`` is null) and the
# grids refresh whatever they show.
MAX_ROW_IDS = 500
_INFO_KEY = "morket_live"


def channel(client: Redis, table_id: int) -> str:
    """The table's channel. Pub/sub ignores Redis's database number, so the channel names it: two
    deployments (or test runs) sharing one Redis server on different databases never hear each other."""
    return f"{PREFIX}{client.connection_pool.connection_kwargs.get('db', 0)}:{int(table_id)}"


def _seq_key(table_id: int) -> str:
    return f"{PREFIX}seq:{int(table_id)}"


def announce(table_id: int, kind: str, row_ids: Sequence[int] | None = None, *, session: Session | None = None) -> None:
    """Note that rows of ``table_id`` were ``kind`` (created, updated, deleted, cells, import) in this transaction.

    Nothing is published until the transaction commits; ``row_ids`` None means "any rows".
    """
    from morket.extensions import db

    target = session if session is not None else db.session()
    pending: dict[int, dict[str, Any]] = target.info.setdefault(_INFO_KEY, {})
    entry = pending.setdefault(int(table_id), {"kinds": set(), "rows": set()})
    entry["kinds"].add(kind)
    if entry["rows"] is None or row_ids is None:
        entry["rows"] = None
    else:
        entry["rows"].update(int(r) for r in row_ids)
        if len(entry["rows"]) > MAX_ROW_IDS:
            entry["rows"] = None


def _redis() -> Redis | None:
    try:
        return current_app.extensions["morket_redis"]
    except (RuntimeError, KeyError):  # no app (a bare script): nothing to tell
        return None


def publish(table_id: int, kinds: Sequence[str], rows: Sequence[int] | None) -> int | None:
    """Publish one message for ``table_id`` now; return its sequence number (None when Redis is down)."""
    client = _redis()
    if client is None:
        return None
    try:
        named = None if rows is None else sorted(rows)
        # The body with "seq" last, its number filled in by the script: one round trip, not two.
        head = {"table": int(table_id), "kinds": sorted(kinds), "rows": named}
        prefix = json.dumps(head, separators=(",", ":"))[:-1] + ',"seq":'
        return int(_publish_script(client)(keys=[_seq_key(table_id)], args=[channel(client, table_id), prefix]))
    except RedisError as exc:
        log.warning("live grid: could not publish a change", extra={"data": {"table": table_id, "error": str(exc)}})
        return None


# INCR the table's sequence and PUBLISH the message carrying it, atomically, in one round trip.
_PUBLISH_LUA = """
local seq = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. seq .. '}')
return seq
"""


def _publish_script(client: Redis):
    scripts = current_app.extensions.setdefault("morket_live_scripts", {})
    script = scripts.get(id(client))
    if script is None:
        script = scripts[id(client)] = client.register_script(_PUBLISH_LUA)
    return script


def current_seq(client: Redis, table_id: int) -> int:
    raw = client.get(_seq_key(table_id))
    return int(raw) if raw else 0


@event.listens_for(Session, "after_commit")
def _publish_after_commit(session: Session) -> None:
    pending = session.info.pop(_INFO_KEY, None)
    if not pending:
        return
    for table_id, entry in pending.items():
        publish(table_id, entry["kinds"], entry["rows"])


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(_INFO_KEY, None)


# --- listeners registered with tables.hooks -------------------------------------------------------


def on_row_events(table: Any, kind: str, row_ids: list[int]) -> None:
    announce(table.id, kind, row_ids)


def on_rows_changed(table: Any, row_ids: list[int]) -> None:
    announce(table.id, "updated", row_ids)


# --- the stream -----------------------------------------------------------------------------------


class StreamSlots:
    """A per-process bound on open streams: each one holds a web thread for its whole life."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0
        self.cap: int | None = None  # half the web worker's threads, set by gunicorn_config

    def take(self, limit: int) -> Callable[[], None] | None:
        """Take a slot; return the function that gives it back (once, however often called), or None."""
        if self.cap is not None:
            limit = min(limit, self.cap)
        with self._lock:
            if self.open >= limit:
                return None
            self.open += 1
        given = threading.Event()

        def give() -> None:
            with self._lock:
                if not given.is_set():
                    given.set()
                    self.open -= 1

        return give


SLOTS = StreamSlots()


def _event(name: str, data: dict[str, Any], seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def stream(
    client: Redis,
    table_id: int,
    *,
    last_seen: int | None,
    lifetime: float,
    heartbeat: float,
    retry_ms: int,
) -> Iterator[str]:
    """Yield server-sent events for one table until ``lifetime`` seconds pass (the client reconnects).

    Subscribes before reading the table's sequence, so nothing published in between is lost; a
    client whose ``last_seen`` is older than the sequence gets a ``change`` at once (it missed one).
    """
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(channel(client, table_id))
        seq = current_seq(client, table_id)
        yield f"retry: {int(retry_ms)}\n" + _event("hello", {"seq": seq}, seq)
        if last_seen is not None and last_seen < seq:
            yield _event("change", {"seq": seq, "table": table_id, "kinds": ["missed"], "rows": None}, seq)
        ends = time.monotonic() + lifetime
        beat = time.monotonic() + heartbeat
        while True:
            now = time.monotonic()
            if now >= ends:
                yield _event("bye", {"seq": seq})
                return
            message = pubsub.get_message(timeout=min(1.0, max(0.05, ends - now)))
            if message is not None and message.get("type") == "message":
                raw = message["data"]
                data = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
                seq = max(seq, int(data.get("seq") or 0))
                yield _event("change", data, data.get("seq"))
                beat = time.monotonic() + heartbeat
            elif time.monotonic() >= beat:
                yield ": heartbeat\n\n"
                beat = time.monotonic() + heartbeat
    except RedisError as exc:
        log.warning("live grid: stream lost Redis", extra={"data": {"table": table_id, "error": str(exc)}})
        yield _event("bye", {"reason": "unavailable"})
    finally:
        with contextlib.suppress(RedisError):
            pubsub.close()
