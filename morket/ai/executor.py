"""The AI column executor: one model call per row, run by the row-run engine (``morket.runs``).

What is the AI column's own: the plan (the column's prompt, endpoint, output schema, the run's
budget), reading a batch (each row's prompt with its cells as delimited data, the cache by prompt
hash and model, how many rows the budgets leave room for), one row's call (breaker, request and
token limits per endpoint, retries with backoff, the answer checked against the output type), the
cells an answer fills and what it costs. Leases, writing, charging once, reconciling are the
engine's, exactly as for enrichment (``Run.kind = "ai"``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from redis.exceptions import RedisError

from morket.ai import budget, outputs, prompt, research
from morket.ai.columns import AiConfig, read_config
from morket.core.db import utcnow
from morket.enrichment import cache
from morket.extensions import db
from morket.runs import execute, leases
from morket.runs import reconcile as reconciler
from morket.runs.executor import ClaimedRow, Prepared, RowOutcome, charge_key, register_executor
from morket.runs.limits import CallScope
from morket.runs.models import Run
from morket.tables import storage
from morket.tables.cells import CellError, parse_cell
from morket.tables.models import Column, Table

if TYPE_CHECKING:
    from morket.ai.llm import Endpoint
    from morket.credits.service import Charge

log = logging.getLogger("morket.ai")

KIND = "ai"
MAX_ATTEMPTS = 6
CALL_TIMEOUT_SECONDS = 30.0
PAGE_TIMEOUT_SECONDS = 10.0  # one page a research row reads
# Default limits of one endpoint when it names none (requests and tokens per minute).
DEFAULT_RPM = 600
DEFAULT_TPM = 400_000
# The token bucket counts tokens in chunks of this many: one bucket token per chunk a call may use.
TOKEN_CHUNK = 500
EMPTY_MESSAGE = "Nothing to ask: the columns the prompt reads are empty in this row."
RESEARCH_SETTINGS = (
    "SCRAPE_ALLOWLIST", "SCRAPE_HOST_RESOLVER_RULES", "SCRAPE_RESPECT_ROBOTS", "SCRAPE_DOMAIN_RATE",
    "RESEARCH_PAGE_MAX_BYTES", "WEBSEARCH_URL", "WEBSEARCH_API_KEY",
)  # fmt: skip


@dataclass
class AiPlan:
    """An AI run's settings as its batches need them (built once per job)."""

    run_id: int
    workspace_id: int
    table_id: int
    column_id: int
    config: AiConfig
    endpoint: Endpoint | None
    schema: dict[str, Any]
    system: str
    budget: int | None  # the run's hard budget in credits (None: none)
    cache_ttl: int
    backoff: float
    rpm: float
    tpm: float
    # What a research column's tools read: scraping's guard and limits, the web search API.
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def research(self) -> bool:
        return self.config.research

    @property
    def caps(self) -> research.Caps:
        c = self.config
        return research.Caps(steps=c.research_steps, pages=c.research_pages, max_tokens=c.max_tokens)

    @property
    def model(self) -> str:
        return (self.endpoint.model if self.endpoint is not None else self.config.model) or "default"

    @property
    def limiter_id(self) -> str:
        endpoint = self.endpoint
        if endpoint is None or endpoint.endpoint_id is None:
            return "platform"
        return f"endpoint-{endpoint.endpoint_id}"

    @property
    def answer_tokens(self) -> int:
        config = self.config
        if config.research:
            return config.research_steps * config.max_tokens
        return budget.answer_bound(config.output_type, config.options, config.max_tokens)

    @property
    def operation(self) -> str:
        return f"ai.{self.model}"[:80]


def resolve(workspace_id: int, config: AiConfig) -> Endpoint:
    """The column's endpoint with its key (``ai.service.resolve_endpoint``)."""
    from morket.ai import service as ai_service
    from morket.workspaces.models import Workspace

    workspace = db.session.get(Workspace, workspace_id)
    return ai_service.resolve_endpoint(workspace, config.endpoint_id, config.model)


def build_plan(run: Run, *, resolve_keys: bool = True) -> AiPlan:
    from flask import current_app

    settings = current_app.config["MORKET"]
    raw = run.config or {}
    config = read_config(raw.get("column"))
    endpoint = resolve(run.workspace_id, config) if resolve_keys else None
    rpm = getattr(endpoint, "requests_per_minute", None) or settings.get("AI_REQUESTS_PER_MINUTE") or DEFAULT_RPM
    tpm = getattr(endpoint, "tokens_per_minute", None) or settings.get("AI_TOKENS_PER_MINUTE") or DEFAULT_TPM
    run_budget = raw.get("budget_credits")
    return AiPlan(
        run_id=run.id,
        workspace_id=run.workspace_id,
        table_id=run.table_id,
        column_id=run.column_id,
        config=config,
        endpoint=endpoint,
        schema=config.schema(),
        system=system_of(config),
        budget=int(run_budget) if run_budget is not None else None,
        cache_ttl=int(settings.get("ENRICHMENT_CACHE_TTL") or 2592000),
        backoff=float(settings.get("ENRICHMENT_BACKOFF_SECONDS") or 2.0),
        rpm=float(rpm),
        tpm=float(tpm),
        settings={k: settings.get(k) for k in RESEARCH_SETTINGS},
    )


# --- a row's prompt ---------------------------------------------------------------------------------


def system_of(config: AiConfig) -> str:
    """The system prompt sent: a research column's tool rules first, the column's own, then the data rule."""
    if config.research:
        return prompt.system_prompt(f"{research.RULES}\n\n{config.system}".strip())
    return prompt.system_prompt(config.system)


def read_inputs(table: Table, config: AiConfig, row_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """{row id: {name in the prompt: cell}} for the rows that still exist."""
    store = storage.storage_for(table)
    names = [(name, store.columns[cid]) for name, cid in config.inputs.items() if cid in store.columns]
    if not row_ids:
        return {}
    result = db.session.execute(
        sa.select(store.rows.c.id, *(col for _, col in names)).where(store.rows.c.id.in_(list(row_ids)))
    )
    return {r[0]: {name: r[i + 1] for i, (name, _) in enumerate(names)} for r in result}


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def row_prompt(config: AiConfig, cells: Mapping[str, Any]) -> str | None:
    """The row's prompt, or None when every cell the prompt reads is empty."""
    texts = {name: _cell_text(value) for name, value in cells.items()}
    if not any(t.strip() for t in texts.values()):
        return None
    return prompt.render(config.prompt, texts)


def prompt_hash(plan_or_model: str, system: str, text: str, schema: Mapping[str, Any], config: AiConfig) -> str:
    """What decides an answer: model, system prompt, prompt, schema, temperature and length."""
    payload = {
        "model": plan_or_model,
        "system": system,
        "prompt": text,
        "schema": schema,
        "t": config.temperature,
        "max": config.max_tokens,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# --- reading a claimed batch ------------------------------------------------------------------------


@dataclass
class Delivered:
    """Who answered a row: the model's usage (what it costs) or the cache (free)."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached: bool = False
    cache_key: tuple[str, str] | None = None
    answer: Any = None


@dataclass
class AiRow:
    row_id: int
    step_index: int
    attempts: int
    prompt: str | None
    bound: int = 0
    cache_key: tuple[str, str] | None = None
    ready: RowOutcome | None = None  # decided without a call (empty, cached, over budget)
    sites: list[str] = field(default_factory=list)  # a research row's own sites


@dataclass
class AiBatch:
    rows: dict[int, AiRow] = field(default_factory=dict)
    stopped: str | None = None


def _ready(row: ClaimedRow, kind: str, state: str, **extra: Any) -> RowOutcome:
    extra.setdefault("attempts", row.attempts)
    return RowOutcome(row.row_id, kind, state, origin=(row.step_index, row.attempts), step_index=0, **extra)


def _lock_run(run_id: int) -> int:
    """Lock the run's row (batches of two jobs reserve budget one after the other); credits used so far."""
    runs = Run.__table__
    return int(db.session.scalar(sa.select(runs.c.credits_used).where(runs.c.id == run_id).with_for_update()) or 0)


def apply_budgets(plan: AiPlan, claimed: Sequence[ClaimedRow], rows: list[AiRow]) -> str | None:
    """Keep the batch within the run's and the month's budget; the stop reason when the run cannot go on.

    Rows that fit what is left (after what other batches' calling rows hold) are called and hold their
    most until filed; the others go back. The run stops only when nothing else is being called and not
    even one more row fits: then the budget is truly spent.
    """
    callers = [r for r in rows if r.ready is None]
    limit = budget.monthly_limit(plan.workspace_id)
    if not callers or (plan.budget is None and limit is None):
        return None
    if limit is not None:
        budget.lock_month(plan.workspace_id)
    used = _lock_run(plan.run_id)
    run_held, all_held = budget.reserved(plan.workspace_id, plan.run_id, [c.row_id for c in claimed])
    rooms: list[tuple[int, int, str]] = []  # (room, held by others, which)
    if plan.budget is not None:
        rooms.append((plan.budget - used - run_held, run_held, "run"))
    if limit is not None:
        rooms.append((limit - budget.month_spent(plan.workspace_id) - all_held, all_held, "month"))
    room, others, which = min(rooms)
    fits = budget.fit([r.bound for r in callers], max(room, 0))
    budget.hold(plan.run_id, {r.row_id: (r.bound if i < fits else None) for i, r in enumerate(callers)})
    if fits == len(callers):
        return None
    for row in callers[fits:]:
        claim = next(c for c in claimed if c.row_id == row.row_id)
        row.ready = _ready(claim, "release", "queued")
    if fits > 0 or others > 0:
        return None  # more room comes back as the rows being called are filed (they cost less than they hold)
    if which == "run":
        left = _open_rows(plan.run_id)
        return budget.STOPPED_RUN.format(budget=plan.budget, left=max(left, 0))
    return budget.STOPPED_MONTH.format(budget=limit)


def _open_rows(run_id: int) -> int:
    from morket.runs.models import OPEN_ROW_STATUSES, RunRow

    rr = RunRow.__table__
    return int(
        db.session.scalar(sa.select(sa.func.count()).where(rr.c.run_id == run_id, rr.c.status.in_(OPEN_ROW_STATUSES)))
        or 0
    )


def prepare_rows(table: Table, plan: AiPlan, claimed: Sequence[ClaimedRow]) -> Prepared:
    """Read the batch's prompts, answer what the cache knows, keep the rest within the budgets."""
    inputs = read_inputs(table, plan.config, [c.row_id for c in claimed])
    batch = AiBatch()
    rows: list[AiRow] = []
    for c in claimed:
        if c.row_id not in inputs:
            continue
        text = row_prompt(plan.config, inputs[c.row_id])
        row = AiRow(c.row_id, c.step_index, c.attempts, text)
        if text is None:
            row.ready = _ready(c, "final", "no_data", message=EMPTY_MESSAGE)
        else:
            row.cache_key = (plan.operation, prompt_hash(plan.model, plan.system, text, plan.schema, plan.config))
            if plan.research:
                row.sites = research.site_urls(list(inputs[c.row_id].values()))
                bytes_ = research.bound_bytes(plan.system, text, plan.caps)
            else:
                bytes_ = prompt.byte_bound(plan.system, text, json.dumps(plan.schema))
            row.bound = budget.row_bound(plan.model, bytes_, plan.answer_tokens)
        rows.append(row)
    known = cache.lookup_many(plan.workspace_id, [r.cache_key for r in rows if r.cache_key is not None])
    for row in rows:
        answer = known.get(row.cache_key) if row.cache_key is not None else None
        if answer is not None and row.ready is None:
            claim = next(c for c in claimed if c.row_id == row.row_id)
            values = answer.values or {}
            row.ready = _ready(
                claim, "final", "success", provider="ai:cache", value=values.get("value"),
                fields=values.get("fields") or {},
                delivered_by=Delivered(plan.model, cached=True, answer=values.get("value")),
                attempt_log=[values["research"]] if values.get("research") else [],
            )  # fmt: skip
    batch.stopped = apply_budgets(plan, claimed, rows)
    if batch.stopped:
        leases.pause_run(plan.run_id, batch.stopped)
    batch.rows = {r.row_id: r for r in rows}
    missing = sorted({c.row_id for c in claimed} - set(batch.rows))
    return Prepared([c for c in claimed if c.row_id in batch.rows], missing, batch)


# --- one row's call --------------------------------------------------------------------------------


class RowWorker:
    """One row's model call: breaker, request and token limits, the call, the answer checked."""

    def __init__(self, plan: AiPlan, batch: AiBatch, scope: CallScope) -> None:
        self.plan, self.batch, self.s = plan, batch, scope

    def __call__(self, claim: ClaimedRow) -> RowOutcome:
        row = self.batch.rows[claim.row_id]
        if row.ready is not None:
            return row.ready
        try:
            return self._call(claim, row)
        except RedisError as exc:
            self.s.redis_down.set()
            log.warning("Redis unreachable during an AI run", extra={"data": {"run_id": self.plan.run_id,
                                                                             "error": str(exc)}})  # fmt: skip
            return self._release(claim)

    def _release(self, claim: ClaimedRow) -> RowOutcome:
        outcome = _ready(claim, "release", "queued")
        outcome.release()
        return outcome

    def _retry(self, claim: ClaimedRow, message: str, retry_after: float | None, limited: bool) -> RowOutcome:
        attempts = claim.attempts + 1
        if attempts >= MAX_ATTEMPTS:
            return _ready(claim, "final", "error", provider=self.plan.operation, attempts=attempts,
                          message=f"Gave up after {attempts} tries: {message}")  # fmt: skip
        backoff = self.plan.backoff * (2 ** (attempts - 1)) * random.uniform(0.5, 1.5)
        delay = max(retry_after or 0.0, backoff)
        outcome = _ready(claim, "retry", "rate_limited" if limited else "retrying", message=message)
        outcome.attempts = attempts
        outcome.next_attempt_at = utcnow() + timedelta(seconds=delay)
        return outcome

    def _call(self, claim: ClaimedRow, row: AiRow) -> RowOutcome:
        from morket.ai import llm

        plan, s = self.plan, self.s
        if s.stop.is_set() or s.redis_down.is_set() or plan.endpoint is None:
            return self._release(claim)
        left = s.lease_deadline - time.monotonic() - s.lease_margin
        if left <= 1:
            return self._release(claim)
        name = f"ai:{plan.limiter_id}"
        breaker = s.breaker(name)
        requests = s.bucket(name, plan.limiter_id, max(plan.rpm / 60.0, 0.01))
        admission = breaker.admit(requests)
        if not admission.allowed:
            return self._retry(claim, "The model endpoint is failing; calls are paused.", breaker.reset_timeout,
                               False)  # fmt: skip
        if admission.wait > 0 and not requests.acquire(timeout=left, wait=admission.wait):
            return self._release(claim)
        tokens = s.bucket(f"ai-tokens:{plan.limiter_id}", plan.limiter_id, max(plan.tpm / 60.0 / TOKEN_CHUNK, 0.01))
        need = math.ceil((len(row.prompt or "") / 4 + plan.config.max_tokens) / TOKEN_CHUNK)
        for _ in range(max(1, need)):
            left = s.lease_deadline - time.monotonic() - s.lease_margin
            if left <= 1 or not tokens.acquire(timeout=left):
                return self._release(claim)
        if s.stop.is_set():
            return self._release(claim)
        if plan.research:
            return self._research(claim, row, requests, breaker, admission.clean)
        left = s.lease_deadline - time.monotonic() - s.lease_margin
        try:
            answer = llm.complete(
                plan.endpoint,
                system=plan.system,
                prompt=row.prompt or "",
                schema=plan.schema,
                temperature=plan.config.temperature,
                max_tokens=plan.config.max_tokens,
                timeout=max(1.0, min(CALL_TIMEOUT_SECONDS, left)),
            )
        except llm.LlmError as exc:
            return self._model_error(claim, exc, requests, breaker, admission.clean)
        if not admission.clean:
            breaker.record_success()
        delivered = Delivered(answer.model or plan.model, answer.input_tokens, answer.output_tokens,
                              cache_key=row.cache_key, answer=answer.value)  # fmt: skip
        try:
            value, fields = outputs.check_answer(
                plan.config.output_type, answer.value, plan.config.options, [f.model_dump() for f in plan.config.fields]
            )
        except outputs.OutputError as exc:
            return _ready(claim, "final", "error", provider=plan.operation, attempts=claim.attempts + 1,
                          message=f"The answer did not fit: {exc.message}", delivered_by=delivered)  # fmt: skip
        return _ready(claim, "final", "success", provider=plan.operation, value=value, fields=fields,
                      attempts=claim.attempts + 1, delivered_by=delivered)  # fmt: skip

    def _model_error(self, claim: ClaimedRow, exc: Any, requests: Any, breaker: Any, clean: bool) -> RowOutcome:
        """The model refused or failed: a rate limit or a passing failure is retried (the limit
        blocked, or the breaker told), anything else is the row's final error."""
        limited = exc.retry_after is not None or "rate limit" in exc.message.lower()
        if exc.retryable:
            if limited:
                requests.block_for(exc.retry_after if exc.retry_after is not None else 1.0)
            else:
                breaker.record_failure()
            return self._retry(claim, exc.message, exc.retry_after, limited)
        if not clean:
            breaker.record_success()  # the endpoint answered: only the request was wrong
        return _ready(claim, "final", "error", provider=self.plan.operation, attempts=claim.attempts + 1,
                      message=exc.message)  # fmt: skip

    def _left(self) -> float:
        return self.s.lease_deadline - time.monotonic() - self.s.lease_margin

    def _research(self, claim: ClaimedRow, row: AiRow, requests: Any, breaker: Any, clean: bool) -> RowOutcome:
        """A research row: the bounded tool loop; only a sourced answer is delivered (and paid for)."""
        from morket.ai import llm

        plan, s = self.plan, self.s
        steps = {"n": 0}

        def before_step() -> bool:  # the first step was admitted above; each further one takes a request
            steps["n"] += 1
            left = s.lease_deadline - time.monotonic() - s.lease_margin
            return not s.stop.is_set() and (steps["n"] == 1 or requests.acquire(timeout=max(left, 0.1)))

        loop = research.Loop(
            plan.endpoint, system=plan.system, question=row.prompt or "", sites=row.sites, caps=plan.caps,
            fetch=lambda url: read_page(url, plan.settings, s.redis, self._left()), search=web_search(plan.settings),
            deadline=s.lease_deadline - s.lease_margin, before_step=before_step,
        )  # fmt: skip
        try:
            found = loop.run()
        except research.Retry as exc:
            if exc.retry_after == 0:
                return self._release(claim)
            return self._retry(claim, exc.message, exc.retry_after, True)  # the search's limit, not the model's
        except llm.LlmError as exc:
            return self._model_error(claim, exc, requests, breaker, clean)
        if not clean:
            breaker.record_success()
        record = found.record()
        if found.status != "answered":
            return _ready(claim, "final", "error", provider=plan.operation, attempts=claim.attempts + 1,
                          message=found.message, attempt_log=[record])  # fmt: skip
        delivered = Delivered(found.model or plan.model, found.input_tokens, found.output_tokens,
                              cache_key=row.cache_key, answer=found.answer)  # fmt: skip
        return _ready(claim, "final", "success", provider=plan.operation, value=found.answer, fields={},
                      attempts=claim.attempts + 1, delivered_by=delivered, attempt_log=[record])  # fmt: skip


def read_page(url: str, settings: Mapping[str, Any], redis: Any, left: float = PAGE_TIMEOUT_SECONDS) -> Any:
    """A page's text through scraping's guard, robots.txt and per-domain limits (within ``left`` seconds)."""
    from morket.scraping.pages import read_page as read

    return read(url, dict(settings), redis, timeout=max(1.0, min(PAGE_TIMEOUT_SECONDS, left)))


def web_search(settings: Mapping[str, Any]) -> Callable[[str], list] | None:
    """The web search the loop may use (None when the operator configured no key: company sites only)."""
    from morket.ai import websearch

    base, key = settings.get("WEBSEARCH_URL"), settings.get("WEBSEARCH_API_KEY")
    if not base or not key:
        return None
    return lambda query: websearch.search(str(base), str(key), query)


# --- filing and charging -------------------------------------------------------------------------------


def _field_value(column: Column, raw: Any) -> tuple[bool, Any]:
    if raw is None:
        return False, None
    try:
        return True, parse_cell(column.type, column.config or {}, raw)
    except CellError:
        return False, None


def file_outcomes(table: Table, plan: AiPlan, outcomes: Sequence[RowOutcome]) -> dict[int, dict[int, Any]]:
    """Fresh answers into the cache; each answered row's AI cell and its fields' columns."""
    fresh = {}
    changes: dict[int, dict[int, Any]] = {}
    columns = {c.id: c for c in table.live_columns}
    store = storage.storage_for(table)
    targets = [f for f in plan.config.fields if f.column_id in columns and f.column_id in store.columns]
    for o in outcomes:
        if o.kind != "final" or o.state != "success":
            continue
        delivered = o.delivered_by
        if isinstance(delivered, Delivered) and not delivered.cached and delivered.cache_key is not None:
            values = {"value": o.value, "fields": o.fields or {}}
            if plan.research and o.attempt_log:
                values["research"] = o.attempt_log[0]
            fresh[delivered.cache_key] = cache.CachedAnswer("hit", values)
        cells: dict[int, Any] = {}
        if plan.column_id in store.columns:
            cells[plan.column_id] = o.value
        for f in targets:
            ok, value = _field_value(columns[f.column_id], (o.fields or {}).get(f.name))
            if ok:
                cells[f.column_id] = value
        changes[o.row_id] = cells
    cache.store_many(plan.workspace_id, fresh, plan.cache_ttl)
    if plan.research:
        store_research(plan, [o for o in outcomes if o.kind == "final" and o.attempt_log])
    return changes


def store_research(plan: AiPlan, outcomes: Sequence[RowOutcome]) -> None:
    """Each researched row's record (answer, sources, pages visited), replacing the row's last one."""
    from sqlalchemy.dialects.postgresql import insert

    from morket.ai.column_models import AiResearchResult

    rows = [
        {"workspace_id": plan.workspace_id, "table_id": plan.table_id, "column_id": plan.column_id,
         "row_id": o.row_id, "run_id": plan.run_id, "status": o.attempt_log[0].get("status") or "gave_up",
         "answer": o.attempt_log[0].get("answer"), "record": o.attempt_log[0], "updated_at": utcnow()}
        for o in outcomes
        if isinstance(o.attempt_log[0], dict)
    ]  # fmt: skip
    if not rows:
        return
    statement = insert(AiResearchResult).values(rows)
    db.session.execute(statement.on_conflict_do_update(
        index_elements=["column_id", "row_id"],
        set_={k: statement.excluded[k] for k in ("run_id", "status", "answer", "record", "updated_at")},
    ))  # fmt: skip


def answer_cost(plan: AiPlan, delivered: Delivered) -> int:
    """Credits an answer costs at the configured prices (a cached or own-endpoint answer: 0)."""
    if delivered.cached or plan.endpoint is None or not plan.endpoint.platform:
        return 0
    return budget.model_cost(plan.model, delivered.input_tokens, delivered.output_tokens)


def delivery_charge(plan: AiPlan, outcome: RowOutcome) -> Charge | None:
    """The charging rule: a row pays once for the value it delivers, its tokens at the model's price.

    An answer that did not fit, an error, a cancelled row pays nothing; a cached answer pays nothing
    (it was paid for when first delivered); an answer from the workspace's own endpoint is a free
    "usage" record. Keyed ``enrich:<run>:<row>:<column>`` like every run's charge.
    """
    from morket.credits.service import Charge

    delivered = outcome.delivered_by
    if outcome.kind != "final" or outcome.state != "success" or not isinstance(delivered, Delivered):
        return None
    if delivered.cached:
        return None
    own = plan.endpoint is not None and not plan.endpoint.platform
    amount = 0 if own else answer_cost(plan, delivered)
    if amount == 0 and not own:
        return None
    return Charge(
        amount,
        charge_key(plan.run_id, outcome.row_id, plan.column_id),
        run_id=plan.run_id,
        row_id=outcome.row_id,
        column_id=plan.column_id,
        provider=budget.PROVIDER,
        operation=plan.operation,
        key_source="own" if own else "platform",
    )


class AiExecutor:
    """An AI column as a ``morket.runs`` executor."""

    kind = KIND
    job = "morket.ai.column_tasks.run_ai_column"

    def plan(self, run: Run, *, resolve_keys: bool = True) -> AiPlan:
        return build_plan(run, resolve_keys=resolve_keys)

    def min_balance(self, plan: AiPlan) -> int:
        if plan.endpoint is not None and not plan.endpoint.platform:
            return 0
        return 1

    def prepare(self, table: Table, plan: AiPlan, claimed: Sequence[ClaimedRow]) -> Prepared:
        return prepare_rows(table, plan, claimed)

    def row_worker(self, plan: AiPlan, prepared: Prepared, scope: CallScope) -> Callable[[Any], RowOutcome]:
        return RowWorker(plan, prepared.shared, scope)

    def file(self, table: Table, plan: AiPlan, outcomes: Sequence[RowOutcome]) -> dict[int, dict[int, Any]]:
        return file_outcomes(table, plan, outcomes)

    def charge(self, plan: AiPlan, outcome: RowOutcome) -> Charge | None:
        return delivery_charge(plan, outcome)

    def answer(
        self, run: Run, row_id: int, step_index: int, provider: str, payload: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        return None  # a model answers in the call


EXECUTOR = register_executor(AiExecutor())


def work(run_id: int, slot: int = 0, *, budget: float | None = None) -> dict[str, Any]:
    """Work on an AI column's run (the job body; see ``morket.runs.execute.work``)."""
    return execute.work(EXECUTOR, run_id, slot, budget=budget)


def reconcile() -> dict[str, int]:
    """Repair AI runs (``morket.runs.reconcile``)."""
    return reconciler.reconcile(EXECUTOR)
