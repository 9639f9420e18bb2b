"""What an AI column may spend: the run's hard budget and the workspace's monthly one.

An answer's cost is only known once the model has answered (its tokens), so a row is let through
only when the most it can cost still fits: its prompt's bytes as input tokens (a token is at least
one byte) and the column's ``max_tokens`` as output, at the model's price (``row_bound``). A batch
takes as many of its rows as fit in what is left of both budgets, counting the rows other batches
hold right now at the same bound; the rest go back untouched and the run stops, its cells left
queued, with a reason that names the budget. Nothing is ever spent past a budget.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa

from morket.core.errors import ValidationFailed
from morket.core.types import Actor, Workspace
from morket.extensions import db

# Messages framing and the system prompt's rule, counted on top of the prompt's bytes.
FRAME_TOKENS = 64
STOPPED_RUN = "Stopped: the run's budget of {budget:,} credits is spent. {left:,} rows were not run."
STOPPED_MONTH = "Stopped: the workspace's AI budget of {budget:,} credits for this month is spent."
PROVIDER = "ai"


def model_cost(model: str, input_tokens: int, output_tokens: int) -> int:
    """Platform credits of one answer (the price list's rule)."""
    from morket.credits.prices import model_cost as cost

    return int(cost(model, int(input_tokens), int(output_tokens)))


def answer_bound(output_type: str, options: Sequence[str], max_tokens: int) -> int:
    """The most tokens an answer can take: a choice or a yes/no is short whatever ``max_tokens`` says.

    A strict schema holds the model to ``{"value": <option>}``; every byte a token at most.
    """
    if output_type == "choice" and options:
        longest = max(len(o.encode("utf-8")) for o in options)
        return min(max_tokens, longest + 16)
    if output_type == "boolean":
        return min(max_tokens, 24)
    if output_type == "number":
        return min(max_tokens, 48)
    return max_tokens


def row_bound(model: str, prompt_bytes: int, output_tokens: int) -> int:
    """The most one answer can cost: every byte of the prompt a token, and ``output_tokens`` out."""
    return max(0, model_cost(model, prompt_bytes + FRAME_TOKENS, output_tokens))


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_spent(workspace_id: int) -> int:
    """Credits the workspace's AI columns were charged this calendar month (UTC), tries included."""
    from morket.credits.models import LedgerEntry

    spent = db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(-LedgerEntry.amount), 0)).where(
            LedgerEntry.workspace_id == workspace_id,
            LedgerEntry.provider == PROVIDER,
            LedgerEntry.amount < 0,
            LedgerEntry.created_at >= month_start(),
        )
    )
    return int(spent or 0)


def monthly_limit(workspace_id: int) -> int | None:
    """The workspace's monthly AI budget in credits (None: no limit)."""
    from morket.ai.column_models import AiWorkspaceBudget

    row = db.session.get(AiWorkspaceBudget, workspace_id)
    return None if row is None else row.monthly_credits


def set_monthly_limit(workspace: Workspace, actor: Actor | None, credits: int | None) -> int | None:
    """Set (or clear, with None) the workspace's monthly AI budget."""
    from morket.ai.column_models import AiWorkspaceBudget
    from morket.core.audit import record_audit

    if credits is not None and (
        isinstance(credits, bool) or not isinstance(credits, int) or not 0 <= credits <= 10**15
    ):
        raise ValidationFailed("The monthly budget is a whole number of credits, 0 or more.",
                               fields={"monthly_credits": ["not a count"]})  # fmt: skip
    row = db.session.get(AiWorkspaceBudget, workspace.id)
    if row is None:
        row = AiWorkspaceBudget(workspace_id=workspace.id)
        db.session.add(row)
    row.monthly_credits = credits
    row.updated_by_id = actor.id if actor is not None else None
    db.session.flush()
    record_audit(workspace, actor, "ai.budget_set", f"workspace:{workspace.id}", monthly_credits=credits)
    return credits


def reserved(workspace_id: int, run_id: int, claimed: Sequence[int]) -> tuple[int, int]:
    """Credits held right now by rows other batches are calling: (this run's, every AI run's of the workspace).

    A batch writes each calling row's most (``row_bound``) on its run row with the lease; a row given
    back or filed, or whose lease lapsed (a killed worker), holds nothing any more.
    """
    from sqlalchemy.dialects import postgresql as pg

    from morket.runs.models import Run, RunRow

    rr, runs = RunRow.__table__, Run.__table__
    bound = sa.func.coalesce(sa.cast(rr.c.result["bound"].astext, sa.BigInteger), 0)
    mine = sa.and_(rr.c.run_id == run_id, rr.c.row_id == sa.func.any(sa.cast(sa.literal(list(claimed)),
                                                                              pg.ARRAY(sa.BigInteger))))  # fmt: skip
    row = db.session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(bound).filter(rr.c.run_id == run_id), 0),
            sa.func.coalesce(sa.func.sum(bound), 0),
        )
        .select_from(rr.join(runs, runs.c.id == rr.c.run_id))
        .where(runs.c.workspace_id == workspace_id, runs.c.kind == "ai", rr.c.status == "leased", ~mine)
    ).one()
    return int(row[0]), int(row[1])


def hold(run_id: int, bounds: dict[int, int | None]) -> None:
    """Write on the leased run rows what each will hold while it is called (None: nothing)."""
    if not bounds:
        return
    ids = sorted(bounds)
    values = [None if bounds[i] is None else json.dumps({"bound": bounds[i]}) for i in ids]
    db.session.execute(
        sa.text(
            "UPDATE enrichment_run_rows AS rr SET result = v.held::jsonb"
            " FROM unnest(CAST(:ids AS bigint[]), CAST(:held AS text[])) AS v(row_id, held)"
            " WHERE rr.run_id = :run_id AND rr.row_id = v.row_id AND rr.status = 'leased'"
        ),
        {"run_id": run_id, "ids": ids, "held": values},
    )


def lock_month(workspace_id: int) -> None:
    """Serialise the batches of every AI run of a workspace that reserve against its monthly budget."""
    from morket.ai.column_models import AiWorkspaceBudget

    db.session.execute(
        sa.select(AiWorkspaceBudget.workspace_id)
        .where(AiWorkspaceBudget.workspace_id == workspace_id)
        .with_for_update()
    )


def fit(bounds: Sequence[int], room: int) -> int:
    """How many of ``bounds`` (in order) fit in ``room`` credits."""
    taken = 0
    for bound in bounds:
        if bound > room:
            break
        room -= bound
        taken += 1
    return taken
