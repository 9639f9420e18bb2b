"""The live grid's stream: server-sent events of one table's changes, for one authorised viewer.

``GET /w/<slug>/tables/<id>/live`` checks membership and ``tables.view`` as the grid page does (a
viewer of another workspace gets 404), then releases its database connection and forwards what
``tables.live`` publishes for that table. A stream holds a web thread for its whole life, so each
process serves at most ``LIVE_STREAMS`` at once (others get 503 and the grid falls back to its
pulse), sends a heartbeat comment every ``LIVE_HEARTBEAT_SECONDS`` (a client that left is noticed
at the next write) and ends after ``LIVE_STREAM_SECONDS``; the browser's EventSource reconnects
with ``Last-Event-ID``, which also checks the viewer's membership again.
"""

from __future__ import annotations

from flask import Response, current_app, request

from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db
from morket.tables import bp, live, service

DEFAULT_STREAMS = 4
DEFAULT_SECONDS = 120
DEFAULT_HEARTBEAT = 5
RETRY_MS = 2000


def _setting(key: str, default: int) -> int:
    value = current_app.config.get("MORKET", {}).get(key)
    return int(value) if value else default


@bp.get("/w/<slug>/tables/<int:table_id>/live")
@workspace_page("tables.view")
def live_stream(workspace: Workspace, membership: Member, table_id: int) -> Response:
    """Stream the table's changes as server-sent events (``change`` events carry the rows written)."""
    table = service.get_table_or_404(workspace, table_id)
    table_id = table.id
    raw_last = (request.headers.get("Last-Event-ID") or request.args.get("last") or "").strip()
    last_seen = int(raw_last) if raw_last.isdigit() and len(raw_last) < 19 else None
    # The stream needs no database: give the connection back before holding the thread.
    db.session.rollback()
    db.session.close()
    give_back = live.SLOTS.take(_setting("LIVE_STREAMS", DEFAULT_STREAMS))
    if give_back is None:
        resp = Response("Too many live grids open on this server; the grid refreshes as you scroll.\n", 503)
        resp.mimetype = "text/plain"
        return resp
    body = live.stream(
        current_app.extensions["morket_redis"],
        table_id,
        last_seen=last_seen,
        lifetime=_setting("LIVE_STREAM_SECONDS", DEFAULT_SECONDS),
        heartbeat=_setting("LIVE_HEARTBEAT_SECONDS", DEFAULT_HEARTBEAT),
        retry_ms=RETRY_MS,
    )
    resp = Response(body, mimetype="text/event-stream")
    resp.call_on_close(give_back)
    resp.headers["Cache-Control"] = "no-cache, no-transform"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp
