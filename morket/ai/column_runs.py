"""AI column runs and tries: "try on 5 rows", the estimate from it, runs with a hard budget, progress.

A try (``AiDryRun``) asks the model for the first rows the prompt has something to ask of, in the
request, and keeps each row's prompt, answer (or the reason it did not fit) and cost; it is charged
like a run's values (a try's answers are real calls). The estimate of a full run is the try's
average cost per answered row times the rows to run, and a hard ceiling (each row's most) beside it.
A run is a row-run engine run of kind "ai" carrying a copy of the column's setup and its budget.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from morket.ai import budget, outputs, prompt
from morket.ai.column_models import AiDryRun
from morket.ai.columns import AiConfig, get_ai_column_or_404, read_config
from morket.ai.executor import (
    EXECUTOR,
    KIND,
    answer_cost,
    prompt_hash,
    read_inputs,
    resolve,
    row_prompt,
    system_of,
)
from morket.core.audit import record_audit
from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.runs import jobs
from morket.runs.leases import cancel_open_rows
from morket.runs.models import OPEN_ROW_STATUSES, Run, RunRow
from morket.tables import storage
from morket.tables.models import Column, Table

TRY_ROWS = 5
TRY_RESEARCH_SECONDS = 60.0
SCOPES = ("all", "empty", "selected")
MAX_SELECTED_ROWS = 10_000


@dataclass(frozen=True)
class AiEstimate:
    rows: int
    per_row: float | None  # the last try's average cost of an answered row (None: no try yet)
    estimate_credits: int | None  # rows x per_row, rounded up
    max_credits: int  # every row at its most (its prompt's bytes as tokens, max_tokens out)
    monthly_limit: int | None
    month_spent: int


# --- try on 5 rows -------------------------------------------------------------------------------------


def _first_rows(table: Table, limit: int) -> list[int]:
    store = storage.storage_for(table)
    return list(db.session.scalars(sa.select(store.rows.c.id).order_by(store.rows.c.pos).limit(limit)))


def _ask(endpoint: Any, config: AiConfig, system: str, text: str) -> dict[str, Any]:
    """One try's call, in a pool thread (no session): the answer or the reason there is none."""
    from morket.ai import llm

    try:
        answer = llm.complete(endpoint, system=system, prompt=text, schema=config.schema(),
                              temperature=config.temperature, max_tokens=config.max_tokens)  # fmt: skip
    except llm.LlmError as exc:
        return {"error": exc.message}
    result: dict[str, Any] = {
        "answer": answer.text[:4000],
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "model": answer.model,
    }
    try:
        value, fields = outputs.check_answer(config.output_type, answer.value, config.options,
                                             [f.model_dump() for f in config.fields])  # fmt: skip
        result.update(value=value, fields=fields)
    except outputs.OutputError as exc:
        result["error"] = f"The answer did not fit: {exc.message}"
    return result


def _research(endpoint: Any, config: AiConfig, system: str, text: str, sites: list[str], tools: dict) -> dict:
    """One research row of a try, in a pool thread: the bounded loop, its answer and sources or why none."""
    import time

    from morket.ai import llm, research
    from morket.ai.executor import read_page, web_search

    caps = research.Caps(steps=config.research_steps, pages=config.research_pages, max_tokens=config.max_tokens)
    loop = research.Loop(
        endpoint, system=system, question=text, sites=sites, caps=caps,
        fetch=lambda url: read_page(url, tools["settings"], tools["redis"]),
        search=web_search(tools["settings"]), deadline=time.monotonic() + TRY_RESEARCH_SECONDS,
    )  # fmt: skip
    try:
        found = loop.run()
    except (llm.LlmError, research.Retry) as exc:
        return {"error": exc.message}
    result: dict[str, Any] = {"answer": (found.answer or "")[:4000], "input_tokens": found.input_tokens,
                              "output_tokens": found.output_tokens, "model": found.model, "sources": found.sources,
                              "record": found.record()}  # fmt: skip
    if found.status == "answered":
        result.update(value=found.answer, fields={})
    else:
        result["error"] = found.message
    return result


def row_bounds(config: AiConfig, model: str, system: str, texts: Sequence[str]) -> list[int]:
    """The most each prompt's answer can cost (a research row: every step of its loop at its most)."""
    from morket.ai import research

    if config.research:
        caps = research.Caps(steps=config.research_steps, pages=config.research_pages, max_tokens=config.max_tokens)
        out = config.research_steps * config.max_tokens
        return [budget.row_bound(model, research.bound_bytes(system, t, caps), out) for t in texts]
    schema_text = json.dumps(config.schema())
    out = budget.answer_bound(config.output_type, config.options, config.max_tokens)
    return [budget.row_bound(model, prompt.byte_bound(system, t, schema_text), out) for t in texts]


def try_rows(
    workspace: Workspace, actor: Actor | None, table: Table, column: Column, *, rows: int = TRY_ROWS
) -> AiDryRun:
    """Ask the model for the first ``rows`` rows with something to ask; keep prompts, answers, costs."""
    from morket.credits.service import Charge, InsufficientCredits, balance, charge_many

    column = get_ai_column_or_404(workspace, table, column.id)
    config = read_config(column.config)
    endpoint = resolve(workspace.id, config)
    system = system_of(config)
    ids = _first_rows(table, max(rows * 4, rows))
    inputs = read_inputs(table, config, ids)
    picked: list[tuple[int, str]] = []
    for row_id in ids:
        text = row_prompt(config, inputs.get(row_id, {}))
        if text is not None:
            picked.append((row_id, text))
        if len(picked) == rows:
            break
    if not picked:
        raise ValidationFailed("The first rows have nothing to ask: the columns the prompt reads are empty.")
    model = endpoint.model
    bounds = row_bounds(config, model, system, [t for _, t in picked])
    if endpoint.platform:
        needed = sum(bounds)
        limit = budget.monthly_limit(workspace.id)
        if limit is not None and budget.month_spent(workspace.id) + needed > limit:
            raise ValidationFailed(
                f"This try could cost up to {needed:,} credits, past the workspace's AI budget for this month "
                f"({limit:,} credits). Raise the budget to try.", fields={"budget": ["month"]},
            )  # fmt: skip
        if balance(workspace.id) < needed:
            raise ValidationFailed(f"This try could cost up to {needed:,} credits; the balance is short.",
                                   fields={"credits": ["short"]})  # fmt: skip
    if config.research:
        from flask import current_app

        from morket.ai import research
        from morket.core.jobs import redis_connection

        tools = {"settings": dict(current_app.config["MORKET"]), "redis": redis_connection()}
        sites = {row_id: research.site_urls(list(inputs.get(row_id, {}).values())) for row_id, _ in picked}
        with ThreadPoolExecutor(max_workers=len(picked)) as pool:
            answers = list(pool.map(
                lambda item: _research(endpoint, config, system, item[1], sites[item[0]], tools), picked))  # fmt: skip
    else:
        with ThreadPoolExecutor(max_workers=len(picked)) as pool:
            answers = list(pool.map(lambda item: _ask(endpoint, config, system, item[1]), picked))
    dry = AiDryRun(
        workspace_id=workspace.id,
        table_id=table.id,
        column_id=column.id,
        created_by_id=actor.id if actor is not None else None,
        config=config.model_dump(mode="json"),
    )
    db.session.add(dry)
    db.session.flush()
    samples, charges = [], []
    from morket.ai.executor import Delivered

    plan_like = _PricePlan(endpoint)
    for (row_id, text), result in zip(picked, answers, strict=True):
        cost = 0
        if "value" in result and "error" not in result:
            delivered = Delivered(model, int(result["input_tokens"]), int(result["output_tokens"]))
            cost = answer_cost(plan_like, delivered)  # type: ignore[arg-type]
            if cost > 0:
                charges.append(Charge(cost, f"ai-try:{dry.id}:{row_id}", row_id=row_id, column_id=column.id,
                                      provider=budget.PROVIDER, operation=f"ai.{model}"[:80]))  # fmt: skip
        samples.append(
            {"row_id": row_id, "prompt": text, "cost": cost, **{k: v for k, v in result.items() if k != "record"}}
        )
    try:
        charge_many(workspace.id, charges)
    except InsufficientCredits:
        raise ValidationFailed("The balance is short for this try's answers.", fields={"credits": ["short"]}) from None
    _seed_cache(workspace, config, model, system, picked, answers)
    answered = [s for s in samples if "error" not in s]
    dry.samples = samples
    dry.credits = sum(s["cost"] for s in samples)
    dry.input_tokens = sum(int(s.get("input_tokens") or 0) for s in samples)
    dry.output_tokens = sum(int(s.get("output_tokens") or 0) for s in samples)
    dry.rows_total = _count_rows(table)
    per_row = (sum(s["cost"] for s in answered) / len(answered)) if answered else 0.0
    dry.estimate_credits = int(-(-per_row * dry.rows_total // 1))
    db.session.flush()
    record_audit(workspace, actor, "ai.column_tried", f"column:{column.id}", table_id=table.id, rows=len(samples),
                 credits=dry.credits)  # fmt: skip
    return dry


def _seed_cache(
    workspace: Workspace, config: AiConfig, model: str, system: str, picked: Sequence[tuple[int, str]],
    answers: Sequence[dict[str, Any]],
) -> None:  # fmt: skip
    """A try's delivered answers go into the cache a run reads: paid once here, free when the run meets them."""
    from flask import current_app

    from morket.enrichment import cache

    schema = config.schema()
    fresh = {}
    for (_row_id, text), result in zip(picked, answers, strict=True):
        record = result.get("record")
        if "value" not in result or "error" in result:
            continue
        values: dict[str, Any] = {"value": result["value"], "fields": result.get("fields") or {}}
        if record is not None:
            values["research"] = record
        fresh[(f"ai.{model}"[:80], prompt_hash(model, system, text, schema, config))] = cache.CachedAnswer(
            "hit", values
        )
    ttl = int(current_app.config["MORKET"].get("ENRICHMENT_CACHE_TTL") or 2592000)
    cache.store_many(workspace.id, fresh, ttl)


@dataclass(frozen=True)
class _PricePlan:
    endpoint: Any

    @property
    def model(self) -> str:
        return self.endpoint.model


def latest_try(workspace: Workspace, column: Column) -> AiDryRun | None:
    return db.session.scalar(
        sa.select(AiDryRun)
        .where(AiDryRun.workspace_id == workspace.id, AiDryRun.column_id == column.id)
        .order_by(AiDryRun.id.desc())
        .limit(1)
    )


def get_try_or_404(workspace: Workspace, try_id: int) -> AiDryRun:
    found = db.session.get(AiDryRun, int(try_id))
    if found is None or found.workspace_id != workspace.id:
        raise NotFound("Try not found.")
    return found


# --- estimate and runs ----------------------------------------------------------------------------------


def _count_rows(table: Table) -> int:
    store = storage.storage_for(table)
    return int(db.session.scalar(sa.select(sa.func.count()).select_from(store.rows)) or 0)


def _scope_filter(table: Table, column: Column, scope: str, row_ids: Sequence[int] | None) -> Any:
    store = storage.storage_for(table)
    rows = store.rows
    if scope not in SCOPES:
        raise ValidationFailed(f"Scope is one of {', '.join(SCOPES)}.", fields={"scope": ["unknown"]})
    if scope == "all":
        return sa.true()
    if scope == "empty":
        cell = store.columns[column.id]
        return sa.or_(cell.is_(None), cell == "")
    ids = sorted({int(r) for r in (row_ids or [])})
    if not ids:
        raise ValidationFailed("Select at least one row.", fields={"row_ids": ["required"]})
    if len(ids) > MAX_SELECTED_ROWS:
        raise ValidationFailed(f"Select at most {MAX_SELECTED_ROWS:,} rows.", fields={"row_ids": ["too many"]})
    return rows.c.id == sa.func.any(sa.cast(sa.literal(ids), pg.ARRAY(sa.BigInteger)))


def estimate(
    workspace: Workspace, table: Table, column: Column, *, scope: str = "all", row_ids: Sequence[int] | None = None
) -> AiEstimate:
    """What a run over ``scope`` would cost: from the last try, and at most."""
    column = get_ai_column_or_404(workspace, table, column.id)
    config = read_config(column.config)
    store = storage.storage_for(table)
    where = _scope_filter(table, column, scope, row_ids)
    count = int(db.session.scalar(sa.select(sa.func.count()).select_from(store.rows).where(where)) or 0)
    endpoint = resolve(workspace.id, config)
    # Each row at its most: the template's bytes plus the cells' (cut at the prompt's cap), max_tokens out.
    system = system_of(config)
    longest = prompt.byte_bound(system, config.prompt, json.dumps(config.schema())) + 200 * max(len(config.inputs), 1)
    if config.research:
        per_row_max = row_bounds(
            config, endpoint.model, system, [config.prompt + " " * (longest - len(config.prompt))]
        )[0]
    else:
        per_row_max = budget.row_bound(
            endpoint.model, longest, budget.answer_bound(config.output_type, config.options, config.max_tokens)
        )
    per_row_max = per_row_max if endpoint.platform else 0
    tried = latest_try(workspace, column)
    per_row = None
    if tried is not None and tried.config == config.model_dump(mode="json"):
        answered = [s for s in tried.samples if "error" not in s]
        per_row = (sum(s["cost"] for s in answered) / len(answered)) if answered else 0.0
    return AiEstimate(
        rows=count,
        per_row=per_row,
        estimate_credits=None if per_row is None else int(-(-per_row * count // 1)),
        max_credits=per_row_max * count,
        monthly_limit=budget.monthly_limit(workspace.id),
        month_spent=budget.month_spent(workspace.id),
    )


def _check_budget(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed(
            "The budget is a whole number of credits.", fields={"budget_credits": ["not a number"]}
        ) from None
    if isinstance(value, bool) or number < 1 or number > 10**15:
        raise ValidationFailed(
            "The budget is a whole number of credits from 1.", fields={"budget_credits": ["too small"]}
        )
    return number


def start_run(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    column: Column,
    *,
    scope: str = "all",
    row_ids: Sequence[int] | None = None,
    budget_credits: Any = None,
) -> Run:
    """Create an AI run over the chosen rows with its budget, and queue its jobs (after the commit)."""
    column = get_ai_column_or_404(workspace, table, column.id)
    config = read_config(column.config)
    limit = _check_budget(budget_credits)
    resolve(workspace.id, config)  # an endpoint that is gone is refused now, not mid-run
    where = _scope_filter(table, column, scope, row_ids)
    store = storage.storage_for(table)
    run = Run(workspace_id=workspace.id, table_id=table.id, column_id=column.id, kind=KIND, scope=scope,
              status="queued", config={"column": config.model_dump(mode="json"), "budget_credits": limit},
              estimate_credits=0, created_by_id=actor.id if actor is not None else None)  # fmt: skip
    db.session.add(run)
    db.session.flush()
    rows, rr, runs = store.rows, RunRow.__table__, Run.__table__
    busy = (
        sa.select(rr.c.row_id)
        .join(runs, runs.c.id == rr.c.run_id)
        .where(
            runs.c.column_id == column.id,
            runs.c.id != run.id,
            rr.c.row_id == rows.c.id,
            rr.c.status.in_(OPEN_ROW_STATUSES),
        )  # fmt: skip
        .exists()
    )
    source = sa.select(
        sa.literal(workspace.id, sa.BigInteger), sa.literal(run.id, sa.BigInteger), rows.c.id, sa.literal("pending"),
        sa.literal(0), sa.literal(0), sa.func.clock_timestamp(),
    ).where(where, ~busy)  # fmt: skip
    names = ["workspace_id", "run_id", "row_id", "status", "step_index", "attempts", "next_attempt_at"]
    db.session.execute(rr.insert().from_select(names, source))
    pending = int(db.session.scalar(sa.select(sa.func.count()).where(rr.c.run_id == run.id)) or 0)
    if pending == 0:
        raise ValidationFailed("There are no rows to run (or another run of this column has them).",
                               fields={"scope": ["no rows"]})  # fmt: skip
    run.total = pending
    found = estimate(workspace, table, column, scope=scope, row_ids=row_ids)
    run.estimate_credits = found.estimate_credits if found.estimate_credits is not None else found.max_credits
    new_state = sa.func.jsonb_build_object(
        str(column.id), sa.func.jsonb_build_object("status", "queued", "run_id", run.id)
    )
    db.session.execute(
        sa.update(rows)
        .where(rr.c.run_id == run.id, rr.c.row_id == rows.c.id)
        .values(cell_state=sa.func.coalesce(rows.c.cell_state, sa.cast(sa.literal("{}"), pg.JSONB)).op("||")(new_state))
    )
    jobs.enqueue_jobs(EXECUTOR, run.id)
    record_audit(workspace, actor, "ai.run_started", f"run:{run.id}", table_id=table.id, column_id=column.id,
                 scope=scope, rows=pending, budget_credits=limit)  # fmt: skip
    db.session.flush()
    return run


def get_run_or_404(workspace: Workspace, run_id: int) -> Run:
    run = db.session.scalar(
        sa.select(Run).where(Run.id == int(run_id), Run.workspace_id == workspace.id, Run.kind == KIND)
    )
    if run is None:
        raise NotFound("Run not found.")
    return run


def cancel_run(workspace: Workspace, actor: Actor | None, run: Run) -> Run:
    """Stop a run: rows not answered yet end as cancelled."""
    run = get_run_or_404(workspace, run.id)
    if run.finished:
        raise Conflict(f"This run is already {run.status}.")
    cancelled = cancel_open_rows(run)
    record_audit(workspace, actor, "ai.run_cancelled", f"run:{run.id}", rows=cancelled)
    db.session.flush()
    db.session.refresh(run)
    return run


def raise_budget(workspace: Workspace, actor: Actor | None, run: Run, budget_credits: Any) -> Run:
    """Give a run stopped at its budget a higher one and let it go on from its queued rows."""
    run = get_run_or_404(workspace, run.id)
    if run.finished:
        raise Conflict(f"This run is already {run.status}.")
    limit = _check_budget(budget_credits)
    if limit is not None and limit <= int(run.credits_used or 0):
        raise ValidationFailed(f"The run has used {run.credits_used:,} credits: give a budget above that.",
                               fields={"budget_credits": ["too small"]})  # fmt: skip
    run.config = {**(run.config or {}), "budget_credits": limit}
    if run.status == "paused":
        run.status, run.pause_reason = "running", None
    jobs.enqueue_jobs(EXECUTOR, run.id, suffix=f"b{limit or 0}")
    record_audit(workspace, actor, "ai.run_budget_raised", f"run:{run.id}", budget_credits=limit)
    db.session.flush()
    return run


def stopped_at_budget(run: Run) -> bool:
    from morket.runs.reconcile import PAUSE_HELD_PREFIX

    return run.status == "paused" and (run.pause_reason or "").startswith(PAUSE_HELD_PREFIX)


def progress(run: Run) -> dict[str, Any]:
    """The numbers the run's panel and the API show."""
    total, done = int(run.total or 0), int(run.done or 0)
    return {
        "id": run.id,
        "column_id": run.column_id,
        "table_id": run.table_id,
        "status": run.status,
        "finished": run.finished,
        "pause_reason": run.pause_reason,
        "stopped_at_budget": stopped_at_budget(run),
        "budget_credits": (run.config or {}).get("budget_credits"),
        "total": total,
        "done": done,
        "queued": max(total - done, 0),
        "succeeded": int(run.succeeded or 0),
        "failed": int(run.failed or 0),
        "no_data": int(run.no_data or 0),
        "cancelled": int(run.cancelled or 0),
        "credits_used": int(run.credits_used or 0),
        "estimate_credits": int(run.estimate_credits or 0),
        "percent": 100 if total == 0 else min(100, round(done * 100 / total)),
    }


def ai_columns(table: Table) -> list[Column]:
    return [c for c in table.live_columns if c.type == "ai"]


def cache_key_of(config: AiConfig, model: str, text: str) -> str:
    return prompt_hash(model, system_of(config), text, config.schema(), config)
