"""What pages answer when a table was deleted under a request: 404, as for a missing table.

Page writes load the table under its row lock (``service.get_table_or_404(..., lock=...)``), so a
delete waits for them and they find no table once it has gone. Reads take no lock: a window read
that meets a ``ut`` table dropped between its statements fails with "relation … does not exist".
This handler, the one place for every page of the app (the grid's, and the pages of other domains
that read or write a table's rows, such as dedupe and bulk edits), turns that into the 404 page
(or fragment) that a lookup of a missing table gives; any other database error stays an error.
"""

from __future__ import annotations

from flask import Response, current_app
from sqlalchemy.exc import ProgrammingError

from morket.core.errors import NotFound
from morket.extensions import db
from morket.tables import bp, storage


@bp.app_errorhandler(ProgrammingError)
def storage_dropped(exc: ProgrammingError) -> Response:
    """Answer 404 when ``exc`` says the table's storage was dropped; re-raise anything else."""
    if not storage.dropped_under(exc):
        raise exc
    db.session.rollback()
    return current_app.handle_user_exception(NotFound("That table no longer exists."))
