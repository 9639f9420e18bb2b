"""The grid's pulse for tables that receive webhooks: whether a table has a source, and a stamp
that changes whenever rows arrive (the page polls it as the live stream's fallback)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from morket.core.errors import NotFound
from morket.core.types import Workspace
from morket.extensions import db
from morket.inbound.models import InboundSource
from morket.tables.models import Table


def has_sources(workspace_id: int, table_id: int) -> bool:
    """Whether the table has an inbound source (its page then watches for rows arriving)."""
    return bool(
        db.session.scalar(
            select(InboundSource.id)
            .where(InboundSource.workspace_id == workspace_id, InboundSource.table_id == table_id)
            .limit(1)
        )
    )


def pulse(workspace: Workspace, table_id: int) -> str:
    """A stamp that changes whenever rows arrive in the table or its sources receive (one statement)."""
    row = db.session.execute(
        select(Table.row_count, func.max(InboundSource.last_received_at))
        .outerjoin(InboundSource, InboundSource.table_id == Table.id)
        .where(Table.id == table_id, Table.workspace_id == workspace.id)
        .group_by(Table.id)
    ).first()
    if row is None:
        raise NotFound("That table does not exist.")
    count, last = row
    return f"{count}:{last.isoformat() if isinstance(last, datetime) else ''}"
