"""Reading a research column's results: one row's (answer, sources, pages visited) or a page of them.

Looked up inside the caller's workspace, table and AI column, so another workspace's ids are NotFound.
"""

from __future__ import annotations

import sqlalchemy as sa

from morket.ai.column_models import AiResearchResult
from morket.ai.columns import get_ai_column_or_404
from morket.core.errors import NotFound
from morket.core.types import Workspace
from morket.extensions import db
from morket.tables.models import Column, Table

MAX_PAGE = 500


def get_result(workspace: Workspace, table: Table, column_id: int, row_id: int) -> AiResearchResult | None:
    """The row's latest research result in this AI column (None: never researched)."""
    column = get_ai_column_or_404(workspace, table, column_id)
    return db.session.scalars(
        sa.select(AiResearchResult).where(
            AiResearchResult.workspace_id == workspace.id,
            AiResearchResult.column_id == column.id,
            AiResearchResult.row_id == row_id,
        )
    ).one_or_none()


def get_result_or_404(workspace: Workspace, table: Table, column_id: int, row_id: int) -> AiResearchResult:
    found = get_result(workspace, table, column_id, row_id)
    if found is None:
        raise NotFound("That row has no research result in this column.")
    return found


def list_results(
    workspace: Workspace, table: Table, column: Column, *, after_row_id: int = 0, limit: int = 100
) -> list[AiResearchResult]:
    """The column's results in row id order, from after ``after_row_id`` (keyset pages)."""
    column = get_ai_column_or_404(workspace, table, column.id)
    return list(
        db.session.scalars(
            sa.select(AiResearchResult)
            .where(
                AiResearchResult.workspace_id == workspace.id,
                AiResearchResult.column_id == column.id,
                AiResearchResult.row_id > after_row_id,
            )
            .order_by(AiResearchResult.row_id)
            .limit(max(1, min(limit, MAX_PAGE)))
        )
    )
