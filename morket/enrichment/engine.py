"""The run engine: lease batches of rows, call providers concurrently, write each outcome once.

Durability rests on PostgreSQL. A worker leases a batch (``UPDATE … FOR UPDATE SKIP LOCKED``)
and commits the lease before it calls anyone. After the calls, one transaction writes, for every
row it still holds, the attempts, the credit charges (one per delivered value, decided by
``delivery_charge``; idempotency key ``enrich:<run>:<row>:<column>``), the cell value, the output
cells, the cell state and the run row's status, and bumps the run's counters. A worker killed in between leaves its rows
leased; the reconciler hands them out again once the lease has expired, and a replayed charge
key charges nothing. So no row is lost and no credit is taken twice.

Throttling rests on Redis (``morket.core.throttle``): one token bucket per provider and key,
and one circuit breaker per provider, shared by every worker. If Redis cannot be reached the
job releases its rows, pauses the run and stops; the reconciler resumes the run when Redis
answers again (``reconcile``), because limiting from a local guess would break the provider's
limit as soon as two workers run.

Provider calls run in a thread pool inside the job (``ENRICHMENT_CONCURRENCY``) sharing one
``httpx.Client``. The threads never touch the database session: everything a row needs is read
before, and everything it produced is written after.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
import sqlalchemy as sa
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.exc import DBAPIError

from morket.core.db import utcnow
from morket.core.errors import MorketError
from morket.core.jobs import QUEUE_ENRICHMENT, enqueue_after_commit
from morket.core.throttle import CircuitBreaker, TokenBucket
from morket.enrichment import cache
from morket.enrichment.config import EnrichmentConfig, read_config
from morket.enrichment.models import EnrichmentRun, EnrichmentRunRow
from morket.extensions import db
from morket.providers.base import CallContext, Operation, Provider, Result
from morket.tables import storage
from morket.tables.cells import CellError, parse_cell
from morket.tables.models import Column, Table

if TYPE_CHECKING:
    from morket.credits.service import Charge

log = logging.getLogger("morket.enrichment")

# A job works this long, then hands its slot to a fresh job (the hard limit is far above).
JOB_BUDGET_SECONDS = 240.0
# Retries of one step of one row before the step counts as failed and the waterfall moves on.
MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
CALLBACK_TIMEOUT_SECONDS = 600
BREAKER_FAIL_MAX = 5
BREAKER_RESET_SECONDS = 30.0
CALL_TIMEOUT_SECONDS = 15.0
BURST_SECONDS = 0.5
# Keep this much of a lease for writing the batch back.
LEASE_MARGIN_SECONDS = 5.0
ALIVE_PREFIX = "morket:enrich:alive"

PAUSE_REDIS = "Paused: the job queue (Redis) cannot be reached. The run resumes when it is back."
PAUSE_CREDITS = "Paused: the workspace is out of credits. The run resumes when credits are added."

ACTIVE_RUN_STATUSES = ("queued", "running")
OPEN_ROW_STATUSES = ("pending", "leased", "awaiting_callback")


def _now() -> Any:
    """The wall clock in SQL (``now()`` would be the start of a possibly long transaction)."""
    return sa.func.clock_timestamp()


def settings() -> Mapping[str, Any]:
    return current_app.config["MORKET"]


def _setting(name: str, default: Any) -> Any:
    value = settings().get(name)
    return default if value is None else value


def redis_client() -> Redis:
    return current_app.extensions["morket_redis"]


# --- what a run needs to know, built once per job --------------------------------------------------


@dataclass
class StepPlan:
    index: int
    operation: Operation
    provider: Provider
    options: dict[str, Any]


@dataclass
class KeyInfo:
    secret: str | None
    source: str  # own | platform | none

    @property
    def limiter_id(self) -> str:
        # The limiter is per provider *and* key: a workspace's own key has its own allowance.
        digest = hashlib.sha256((self.secret or "").encode()).hexdigest()[:12]
        return f"{self.source}:{digest}"


@dataclass
class RunPlan:
    run_id: int
    workspace_id: int
    table_id: int
    column_id: int
    config: EnrichmentConfig
    steps: list[StepPlan]
    validation: Operation | None
    validation_provider: Provider | None
    keys: dict[str, KeyInfo]
    prices: dict[str, int]
    rates: dict[str, float]
    base_urls: dict[str, str]
    cache_ttl: int
    callback_base: str
    backoff_base: float = BACKOFF_BASE_SECONDS

    @property
    def input_column_ids(self) -> list[int]:
        return sorted(set(self.config.inputs.values()))

    @property
    def own_providers(self) -> set[str]:
        """Providers this run reaches with the workspace's own key (their parts cost no credits)."""
        return {name for name, key in self.keys.items() if key.source == "own"}

    def value_price(self, step: StepPlan) -> int:
        """Credits a value delivered by ``step`` costs (``credits.prices.delivery_price``)."""
        from morket.credits.prices import delivery_price

        validation = self.validation.key if self.validation is not None else None
        return delivery_price(step.operation.key, validation, own=self.own_providers)

    @property
    def min_balance(self) -> int:
        """The balance below which a delivered value cannot be paid for (the dearest one)."""
        return max((self.value_price(s) for s in self.steps), default=0)

    @property
    def needs_credits(self) -> bool:
        return self.min_balance > 0


def _price(operation_key: str) -> int:
    from morket.credits.prices import price

    return int(price(operation_key))


def build_plan(run: EnrichmentRun, *, resolve_keys: bool = True) -> RunPlan:
    """Read the run's configuration, its operations and (once per job) the keys it calls with."""
    from morket.providers import registry

    config = read_config(run.config)
    steps = []
    for index, step in enumerate(config.steps):
        op = registry.get_operation(step.operation)
        steps.append(StepPlan(index, op, registry.get_provider(op.provider), dict(step.options)))
    validation = validation_provider = None
    if config.validation is not None:
        validation = registry.get_operation(config.validation.operation)
        validation_provider = registry.get_provider(validation.provider)
    providers = {s.provider.name: s.provider for s in steps}
    if validation_provider is not None:
        providers[validation_provider.name] = validation_provider
    keys: dict[str, KeyInfo] = {}
    for name, provider in providers.items():
        if not provider.requires_key:
            keys[name] = KeyInfo(None, "none")
        elif resolve_keys:
            from morket.credentials.service import resolve_key

            secret, source = resolve_key(run.workspace_id, name, actor_id=run.created_by_id, run_id=run.id)
            keys[name] = KeyInfo(secret, source)
        else:
            keys[name] = KeyInfo(None, "platform")
    op_keys = [s.operation.key for s in steps] + ([validation.key] if validation else [])
    rates = registry.default_rates(settings())
    base = str(_setting("BASE_URL", "http://127.0.0.1:5000")).rstrip("/")
    return RunPlan(
        run_id=run.id,
        workspace_id=run.workspace_id,
        table_id=run.table_id,
        column_id=run.column_id,
        config=config,
        steps=steps,
        validation=validation,
        validation_provider=validation_provider,
        keys=keys,
        prices={key: _price(key) for key in op_keys},
        rates={name: float(rates.get(name, p.default_rate)) for name, p in providers.items()},
        base_urls={name: registry.base_url(p, settings()) for name, p in providers.items()},
        cache_ttl=int(_setting("ENRICHMENT_CACHE_TTL", 2592000)),
        callback_base=f"{base}/api/v1/enrichment/callbacks",
        backoff_base=float(_setting("ENRICHMENT_BACKOFF_SECONDS", BACKOFF_BASE_SECONDS)),
    )


# --- one row's work (runs in a pool thread; no database session here) -----------------------------


@dataclass
class RowInput:
    row_id: int
    step_index: int
    attempts: int
    values: dict[int, Any]
    message: str | None = None
    # An asynchronous answer delivered by a callback for the step at step_index.
    stored_result: dict[str, Any] | None = None


@dataclass
class AttemptRecord:
    provider: str
    operation: str
    step_index: int
    outcome: str
    http_status: int | None = None
    latency_ms: int = 0
    cached: bool = False
    message: str | None = None
    validation: bool = False
    key_source: str = "none"
    # What the call cost at the provider, in credits at list price (analytics: whoever paid it).
    # What the workspace pays is decided per delivered value by ``delivery_charge``.
    cost: int = 0
    # A fresh final answer to remember in the cache.
    cache_key: cache.CacheKey | None = None
    cache_values: dict[str, Any] | None = None
    record: bool = True
    attempt_id: int | None = None


@dataclass
class RowOutcome:
    row_id: int
    kind: str  # final | retry | await | release
    state: str  # a CELL_STATE
    provider: str | None = None
    message: str | None = None
    value: Any = None
    fields: dict[str, Any] | None = None
    step_index: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = None
    callback_id: str | None = None
    attempt_log: list[AttemptRecord] = field(default_factory=list)
    # The run row's step and attempts before this try (what a release puts back).
    origin: tuple[int, int] = (0, 0)
    # The attempt whose value the row delivered (a success's ledger entry points at it).
    delivered_by: AttemptRecord | None = None

    def release(self) -> None:
        """Give the row back untouched: it is tried again from where it was."""
        self.kind, self.state, self.message, self.attempt_log = "release", "queued", None, []
        self.step_index, self.attempts, self.next_attempt_at = self.origin[0], self.origin[1], None


class OutOfCredits(Exception):
    """A charge found the balance short: the batch is written again with its billable rows released."""


class _Release(Exception):
    """Stop working on this row and give it back (Redis away, lease nearly over, run paused)."""


@dataclass
class CallServices:
    """What the pool threads share: the HTTP client, the limiters, breakers and the job's flags."""

    plan: RunPlan
    client: httpx.Client
    redis: Redis
    engine: sa.Engine
    lease_deadline: float
    prefetched: dict[cache.CacheKey, cache.CachedAnswer]
    lease_margin: float = LEASE_MARGIN_SECONDS
    stop: threading.Event = field(default_factory=threading.Event)
    redis_down: threading.Event = field(default_factory=threading.Event)
    config: Mapping[str, Any] = field(default_factory=dict)
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    breakers: dict[str, CircuitBreaker] = field(default_factory=dict)

    def bucket(self, provider: str) -> TokenBucket:
        found = self.buckets.get(provider)
        if found is None:
            rate = self.plan.rates.get(provider, 10.0)
            key = f"{provider}:{self.plan.keys[provider].limiter_id}"
            # Half a second of burst: enough to make up for moments when every job is writing its
            # batch (so the achieved rate stays at the limit), small enough to stay inside the
            # provider's own bucket while it is partly drained.
            burst = max(1.0, rate * BURST_SECONDS)
            found = self.buckets[provider] = TokenBucket(self.redis, key, rate=rate, burst=burst)
        return found

    def breaker(self, provider: str) -> CircuitBreaker:
        found = self.breakers.get(provider)
        if found is None:
            found = self.breakers[provider] = CircuitBreaker(
                self.redis,
                f"provider:{provider}",
                fail_max=int(self.config.get("ENRICHMENT_BREAKER_FAIL_MAX") or BREAKER_FAIL_MAX),
                reset_timeout=float(self.config.get("ENRICHMENT_BREAKER_RESET_SECONDS") or BREAKER_RESET_SECONDS),
            )
        return found


def cell_input(value: Any) -> Any:
    """A stored cell as a provider input: text for numbers and dates, an enrichment cell's value."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if value is None:
        return None
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool | int | float | str):
        return value.strip() if isinstance(value, str) else value
    return json.dumps(value, default=str)


def step_inputs(plan: RunPlan, step: StepPlan, values: Mapping[int, Any]) -> dict[str, Any]:
    """The operation's inputs from the row's mapped columns (all mapped ones for free-form operations)."""
    names = {spec.name for spec in step.operation.inputs}
    found: dict[str, Any] = {}
    for name, column_id in plan.config.inputs.items():
        if names and name not in names:
            continue
        value = cell_input(values.get(column_id))
        if value not in (None, ""):
            found[name] = value
    return found


def missing_inputs(op: Operation, inputs: Mapping[str, Any]) -> str | None:
    """Why ``inputs`` cannot be sent to ``op`` (a required input is empty), or None."""
    missing = [spec.label or spec.name for spec in op.inputs if spec.required and spec.name not in inputs]
    if missing:
        return "Missing input: " + ", ".join(missing)
    if op.any_of and not any(name in inputs for name in op.any_of):
        return "Needs one of: " + ", ".join(op.any_of)
    return None


def backoff_seconds(attempt: int, base_seconds: float = BACKOFF_BASE_SECONDS) -> float:
    """Exponential backoff with jitter: about 2, 4, 8 … seconds, capped, spread ±50%."""
    base = min(BACKOFF_CAP_SECONDS, base_seconds * (2 ** max(attempt - 1, 0)))
    return base * random.uniform(0.5, 1.5)  # noqa: S311 - jitter, not security


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class RowWorker:
    """Runs one row's waterfall: cache, breaker, limiter, provider, validation."""

    def __init__(self, services: CallServices) -> None:
        self.s = services
        self.plan = services.plan

    def __call__(self, row: RowInput) -> RowOutcome:
        try:
            outcome = self._waterfall(row)
            outcome.origin = (row.step_index, row.attempts)
            return outcome
        except _Release:
            return RowOutcome(row.row_id, "release", "queued", step_index=row.step_index, attempts=row.attempts)
        except RedisError as exc:
            self.s.redis_down.set()
            log.warning(
                "Redis unreachable during a run", extra={"data": {"run_id": self.plan.run_id, "error": str(exc)}}
            )
            return RowOutcome(row.row_id, "release", "queued", step_index=row.step_index, attempts=row.attempts)

    # The waterfall: try each step from the row's current one until a value is found and accepted.
    def _waterfall(self, row: RowInput) -> RowOutcome:  # noqa: C901 - one branch per outcome
        plan = self.plan
        log_: list[AttemptRecord] = []
        not_found = False
        error = row.message
        last_provider: str | None = None
        # One verification per distinct value of the row: a later step returning the same value
        # reuses the verdict instead of asking (and paying) the verifier again.
        verdicts: dict[str, bool] = {}
        for step in plan.steps[row.step_index :]:
            if self.s.stop.is_set() or self.s.redis_down.is_set():
                raise _Release
            attempts = row.attempts if step.index == row.step_index else 0
            stored = row.stored_result if step.index == row.step_index else None
            inputs = step_inputs(plan, step, row.values)
            last_provider = step.provider.name
            problem = missing_inputs(step.operation, inputs)
            if problem:
                log_.append(
                    AttemptRecord(step.provider.name, step.operation.key, step.index, "invalid_input", message=problem)
                )
                error = problem
                continue
            result, record = self._call(step.provider, step.operation, step.index, inputs, step.options, stored)
            log_.append(record)
            outcome = result.outcome
            if outcome == "hit":
                value = result.values.get(plan.config.target)
                if _is_empty(value):
                    not_found = True
                    continue
                verdict = self._validate(step, value, log_, verdicts, record)
                if verdict is None:
                    return self._retry(
                        row, step, attempts, log_, "retrying", "The validation step did not answer; retrying."
                    )
                if not verdict:
                    not_found = True
                    error = None
                    continue
                return RowOutcome(
                    row.row_id,
                    "final",
                    "success",
                    provider=step.provider.name,
                    value=value,
                    fields=dict(result.values),
                    step_index=step.index,
                    attempt_log=log_,
                    delivered_by=record,
                )
            if outcome == "not_found":
                not_found = True
                continue
            if outcome in ("invalid_input", "auth_error"):
                error = result.message or outcome.replace("_", " ")
                continue
            if outcome == "pending":
                return RowOutcome(
                    row.row_id,
                    "await",
                    "awaiting_callback",
                    provider=step.provider.name,
                    step_index=step.index,
                    callback_id=result.callback_id,
                    attempt_log=log_,
                )
            # retryable, rate_limited, circuit_open
            if attempts + 1 >= MAX_ATTEMPTS:
                error = f"{step.provider.label}: gave up after {MAX_ATTEMPTS} attempts ({result.message or outcome})"
                continue
            state = "rate_limited" if outcome == "rate_limited" else "retrying"
            delay = max(backoff_seconds(attempts + 1, self.plan.backoff_base), result.retry_after or 0.0)
            return self._retry(row, step, attempts, log_, state, result.message, delay)
        if not_found:
            return RowOutcome(
                row.row_id,
                "final",
                "no_data",
                provider=last_provider,
                message=None,
                step_index=len(plan.steps),
                attempt_log=log_,
            )
        return RowOutcome(
            row.row_id,
            "final",
            "error",
            provider=last_provider,
            message=error or "No provider could be called.",
            step_index=len(plan.steps),
            attempt_log=log_,
        )

    def _retry(
        self,
        row: RowInput,
        step: StepPlan,
        attempts: int,
        log_: list[AttemptRecord],
        state: str,
        message: str | None,
        delay: float | None = None,
    ) -> RowOutcome:
        wait = backoff_seconds(attempts + 1, self.plan.backoff_base) if delay is None else delay
        return RowOutcome(
            row.row_id,
            "retry",
            state,
            provider=step.provider.name,
            message=message,
            step_index=step.index,
            attempts=attempts + 1,
            next_attempt_at=utcnow() + timedelta(seconds=wait),
            attempt_log=log_,
        )

    def _validate(
        self,
        step: StepPlan,
        value: Any,
        log_: list[AttemptRecord],
        verdicts: dict[str, bool],
        candidate: AttemptRecord,
    ) -> bool | None:
        """True: accept; False: reject and move on; None: the verifier could not answer now."""
        plan = self.plan
        rule = plan.config.validation
        if rule is None or plan.validation is None or plan.validation_provider is None:
            return True
        checked = cell_input(value)
        seen = json.dumps(checked, sort_keys=True, default=str)
        if seen in verdicts:
            verdict = verdicts[seen]
            candidate.message = "The same value as an earlier step: its verdict ({}) was reused.".format(
                "accepted" if verdict else "rejected"
            )
            return verdict
        result, record = self._call(
            plan.validation_provider, plan.validation, step.index, {rule.input: checked}, {}, None, True
        )
        log_.append(record)
        verdict: bool | None = None
        if result.outcome == "hit":
            verdict = str(result.values.get(rule.field)) in rule.accept
        elif result.outcome in ("not_found", "invalid_input", "auth_error"):
            verdict = False
        if verdict is not None:
            verdicts[seen] = verdict
        return verdict

    def _call(
        self,
        provider: Provider,
        op: Operation,
        step_index: int,
        inputs: dict[str, Any],
        options: dict[str, Any],
        stored: dict[str, Any] | None,
        validation: bool = False,
    ) -> tuple[Result, AttemptRecord]:
        plan = self.plan
        key_info = plan.keys[provider.name]
        key = (op.key, cache.input_hash(op.key, inputs, options))
        record = AttemptRecord(provider.name, op.key, step_index, "", validation=validation, key_source=key_info.source)
        if stored is not None:
            # A callback already logged this answer; only remember it in the cache.
            result = Result(
                outcome=stored.get("outcome", "retryable"),
                values=stored.get("values") or {},
                http_status=stored.get("http_status"),
                message=stored.get("message"),
            )
            record.outcome, record.record = result.outcome, False
            record.attempt_id = stored.get("attempt_id")
            if result.outcome in ("hit", "not_found"):
                record.cache_key, record.cache_values = key, dict(result.values)
            return result, record
        answer = self.s.prefetched.get(key)
        if answer is None and validation:
            with self.s.engine.connect() as conn:
                answer = cache.lookup_one(conn, plan.workspace_id, key)
        if answer is not None:
            record.outcome, record.cached = answer.outcome, True
            return Result(outcome=answer.outcome, values=dict(answer.values)), record  # type: ignore[arg-type]
        if provider.requires_key and not key_info.secret:
            message = f"No {provider.label} API key: add one in Settings → Provider keys."
            record.outcome, record.message = "auth_error", message
            return Result(outcome="auth_error", message=message), record
        left = self.s.lease_deadline - time.monotonic() - self.s.lease_margin
        if left <= 0:
            raise _Release
        breaker, bucket = self.s.breaker(provider.name), self.s.bucket(provider.name)
        # One round trip asks the breaker and takes a token; a wait means the bucket is empty.
        admission = breaker.admit(bucket)
        if not admission.allowed:
            record.outcome, record.record = "circuit_open", False
            # Come back when the breaker may let a probe through, not after the (shorter) backoff.
            wait = breaker.reset_timeout
            return Result(
                outcome="retryable", message=f"{provider.label} is failing; calls are paused.", retry_after=wait
            ), record
        if admission.wait > 0 and not bucket.acquire(timeout=left, wait=admission.wait):
            raise _Release
        if self.s.stop.is_set():
            raise _Release
        callback_url = f"{plan.callback_base}/{provider.name}" if op.asynchronous else None
        ctx = CallContext(
            client=self.s.client,
            api_key=key_info.secret,
            base_url=plan.base_urls[provider.name],
            timeout=CALL_TIMEOUT_SECONDS,
            callback_url=callback_url,
        )
        started = time.perf_counter()
        try:
            result = provider.call(op, inputs, ctx, options)
        except Exception as exc:  # noqa: BLE001 - an adapter bug is recorded as a retryable failure
            log.exception("provider adapter raised", extra={"data": {"operation": op.key}})
            result = Result(outcome="retryable", message=f"Provider error ({type(exc).__name__})")
        record.latency_ms = int((time.perf_counter() - started) * 1000)
        if result.outcome == "retryable":
            breaker.record_failure()
        elif not admission.clean:
            breaker.record_success()  # a clean breaker (no failure counted) has nothing to reset
        if result.outcome == "rate_limited":
            bucket.block_for(result.retry_after if result.retry_after is not None else 1.0)
        if result.outcome == "pending" and not result.callback_id:
            result.callback_id = uuid.uuid4().hex
        record.outcome = result.outcome
        record.http_status = result.http_status
        record.message = result.message
        if result.outcome == "hit":
            record.cost = plan.prices.get(op.key, 0)
        if result.outcome in ("hit", "not_found"):
            record.cache_key, record.cache_values = key, dict(result.values)
        return result, record


# --- claiming and reading --------------------------------------------------------------------------


def claim_rows(run_id: int, owner: str, limit: int, lease_seconds: int) -> list[tuple[int, int, int, str | None, Any]]:
    """Lease up to ``limit`` due pending rows of the run; return (row_id, step, attempts, message, result).

    Times here are ``clock_timestamp()``, not ``now()``: ``now()`` is the start of the transaction,
    and a caller that holds one open for long would never see a retry come due.
    """
    rr = EnrichmentRunRow.__table__
    due = (
        sa.select(rr.c.run_id, rr.c.row_id)
        .where(rr.c.run_id == run_id, rr.c.status == "pending", rr.c.next_attempt_at <= sa.func.clock_timestamp())
        .order_by(rr.c.next_attempt_at, rr.c.row_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        sa.update(rr)
        .where(sa.tuple_(rr.c.run_id, rr.c.row_id).in_(due))
        .values(
            status="leased",
            lease_owner=owner,
            lease_expires_at=sa.func.clock_timestamp() + sa.text(f"interval '{int(lease_seconds)} seconds'"),
        )
        .returning(rr.c.row_id, rr.c.step_index, rr.c.attempts, rr.c.message, rr.c.result)
    )
    return sorted((r[0], r[1], r[2], r[3], r[4]) for r in db.session.execute(stmt))


def _state_patch(column_id: int, status: str, run_id: int, provider: str | None = None, message: str | None = None):  # noqa: ANN202
    state: dict[str, Any] = {"status": status, "run_id": run_id}
    if provider:
        state["provider"] = provider
    if message:
        state["message"] = message[:500]
    return {str(column_id): state}


def mark_cells(
    table: Table, column_id: int, run_id: int, row_ids: Sequence[int], status: str, *, message: str | None = None
) -> None:
    """Set the enrichment cell state of ``row_ids`` (queued, running, error …) in one statement."""
    if not row_ids:
        return
    rows = storage.storage_for(table).rows
    patch = json.dumps(_state_patch(column_id, status, run_id, message=message))
    db.session.execute(
        sa.update(rows)
        .where(rows.c.id == sa.func.any(sa.cast(sa.literal(list(row_ids)), pg.ARRAY(sa.BigInteger))))
        .values(
            cell_state=sa.func.coalesce(rows.c.cell_state, sa.cast(sa.literal("{}"), pg.JSONB)).op("||")(
                sa.cast(sa.literal(patch), pg.JSONB)
            )
        )
    )


def read_rows(table: Table, plan: RunPlan, claimed: Sequence[tuple[int, int, int, str | None, Any]]) -> list[RowInput]:
    """Read the claimed rows' input cells from the user table (rows deleted since are left out)."""
    store = storage.storage_for(table)
    cols = [store.columns[cid] for cid in plan.input_column_ids if cid in store.columns]
    ids = [c[0] for c in claimed]
    found = {
        r[0]: dict(zip([int(c.name[2:]) for c in cols], r[1:], strict=True))
        for r in db.session.execute(sa.select(store.rows.c.id, *cols).where(store.rows.c.id.in_(ids)))
    }
    return [
        RowInput(row_id, step, attempts, found[row_id], message, result)
        for row_id, step, attempts, message, result in claimed
        if row_id in found
    ]


def prefetch_cache(plan: RunPlan, rows: Sequence[RowInput]) -> dict[cache.CacheKey, cache.CachedAnswer]:
    """Look up every step's cache entry for the batch in one query."""
    keys = []
    for row in rows:
        for step in plan.steps[row.step_index :]:
            keys.append(
                (
                    step.operation.key,
                    cache.input_hash(step.operation.key, step_inputs(plan, step, row.values), step.options),
                )
            )
    return cache.lookup_many(plan.workspace_id, keys)


# --- writing a batch's outcomes ---------------------------------------------------------------------


def _output_value(column: Column, raw: Any) -> tuple[bool, Any]:
    """(ok, stored value) of a delivered field for an ordinary column of the table."""
    if column.type in ("formula", "enrichment") or _is_empty(raw):
        return False, None
    if column.type != "json" and isinstance(raw, dict | list):
        raw = json.dumps(raw, ensure_ascii=False)
    try:
        return True, parse_cell(column.type, column.config or {}, raw)
    except CellError:
        return False, None


def _cell_updates(table: Table, plan: RunPlan, outcomes: Sequence[RowOutcome]) -> dict[int, dict[int, Any]]:
    """{row_id: {column_id: value}} for successful rows: the enrichment cell and its output cells.

    An output cell is written when it is empty, when it still holds what an earlier enrichment put
    there (it equals the field kept in the enrichment cell), or when the column says overwrite.
    Anything else is a value a user typed and is kept.
    """
    hits = [o for o in outcomes if o.kind == "final" and o.state == "success"]
    if not hits:
        return {}
    columns = {c.id: c for c in table.live_columns}
    store = storage.storage_for(table)
    mappings = [m for m in plan.config.outputs if m.column_id in columns and m.column_id in store.columns]
    own = store.columns.get(plan.column_id)
    current: dict[int, dict[int, Any]] = {}
    if mappings and own is not None:
        cols = [own, *(store.columns[m.column_id] for m in mappings)]
        ids = sorted(o.row_id for o in hits)
        for r in db.session.execute(
            sa.select(store.rows.c.id, *cols)
            .where(store.rows.c.id.in_(ids))
            .order_by(store.rows.c.id)
            .with_for_update()
        ):
            current[r[0]] = {plan.column_id: r[1], **{m.column_id: r[i + 2] for i, m in enumerate(mappings)}}
    changes: dict[int, dict[int, Any]] = {}
    for o in hits:
        cells: dict[int, Any] = {}
        if own is not None:
            cells[plan.column_id] = {"value": o.value, "provider": o.provider, "fields": o.fields or {}}
        now = current.get(o.row_id, {})
        previous = now.get(plan.column_id) or {}
        previous_fields = previous.get("fields", {}) if isinstance(previous, dict) else {}
        for m in mappings:
            column = columns[m.column_id]
            ok, value = _output_value(column, (o.fields or {}).get(m.field))
            if not ok:
                continue
            existing = now.get(m.column_id)
            if not plan.config.overwrite and not _is_empty(existing):
                was_ours, earlier = _output_value(column, previous_fields.get(m.field))
                if not (was_ours and earlier == existing):
                    continue
            cells[m.column_id] = value
        changes[o.row_id] = cells
    return changes


# Columns of an attempt given as arrays (workspace, run and column are one value for the batch).
_ATTEMPT_ARRAYS = {
    "id": "bigint",
    "row_id": "bigint",
    "provider": "text",
    "operation": "text",
    "step_index": "int",
    "outcome": "text",
    "http_status": "int",
    "latency_ms": "int",
    "cost": "int",
    "key_source": "text",
    "cached": "boolean",
    "message": "text",
}
_INSERT_ATTEMPTS = sa.text(
    "INSERT INTO enrichment_attempts (workspace_id, run_id, column_id, "  # noqa: S608 - constant names above
    + ", ".join(_ATTEMPT_ARRAYS)
    + ") SELECT :workspace_id, :run_id, :column_id, v.* FROM unnest("
    + ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in _ATTEMPT_ARRAYS.items())
    + ") AS v("
    + ", ".join(_ATTEMPT_ARRAYS)
    + ")"
)


def _array_item(kind: str, value: Any) -> Any:
    """A cell value as one element of the array its column's values travel in (see _cells_update)."""
    if kind == "jsonb":
        return json.dumps(value)
    if kind == "text[]":
        return None if value is None else json.dumps(list(value))
    return value


@functools.lru_cache(maxsize=512)
def _cells_update(schema: str, table: str, names: tuple[str, ...], kinds: tuple[str, ...]) -> sa.TextClause:
    """UPDATE of a batch's cell states and the ``names`` columns from arrays, one element per row.

    JSON values travel as text and array values (multi select) as JSON text: an array of arrays
    cannot be unnested row by row.
    """
    sources, sets = ["CAST(:_row AS bigint[])", "CAST(:_state AS text[])"], []
    for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        if kind == "jsonb":
            sources.append(f"CAST(:v{i} AS text[])")
            value = f"v.v{i}::jsonb"
        elif kind == "text[]":
            sources.append(f"CAST(:v{i} AS text[])")
            elements = f"ARRAY(SELECT jsonb_array_elements_text(v.v{i}::jsonb))"
            value = f"CASE WHEN v.v{i} IS NULL THEN NULL ELSE {elements} END"
        else:
            sources.append(f"CAST(:v{i} AS {kind}[])")
            value = f"v.v{i}"
        sets.append(f'"{name}" = {value}')
    aliases = ", ".join(["_row", "_state", *(f"v{i}" for i in range(len(names)))])
    return sa.text(
        f'UPDATE "{schema}"."{table}" AS t'  # noqa: S608 - generated table and column names only
        f" SET cell_state = coalesce(t.cell_state, '{{}}'::jsonb) || v._state::jsonb"
        + "".join(f", {item}" for item in sets)
        + f" FROM unnest({', '.join(sources)}) AS v({aliases}) WHERE t.id = v._row"
    )


def _allocate_attempt_ids(count: int) -> list[int]:
    if count <= 0:
        return []
    return list(
        db.session.scalars(
            sa.text("SELECT nextval(pg_get_serial_sequence('enrichment_attempts', 'id')) FROM generate_series(1, :n)"),
            {"n": count},
        )
    )


def delivery_charge(plan: RunPlan, outcome: RowOutcome) -> Charge | None:
    """The charging rule, decided here and nowhere else: what a row's outcome costs the workspace.

    A row pays once per value it delivers (a final success): the price of the step that delivered
    it plus the column's validation (``RunPlan.value_price``), under the key
    ``enrich:<run>:<row>:<column>`` so that a replayed batch or a second worker charges nothing
    more. Rejected, not-found, failed and unfinished rows cost nothing (their attempts are still
    logged with the provider's cost). A value the workspace's cache answered costs nothing: it was
    paid for when a provider first delivered it. A value delivered entirely on the workspace's own
    keys is recorded as a free "usage" entry; a free operation on no own key writes no entry.
    """
    from morket.credits.service import Charge

    if outcome.kind != "final" or outcome.state != "success" or outcome.step_index >= len(plan.steps):
        return None
    delivered_by = outcome.delivered_by
    if delivered_by is not None and delivered_by.cached:
        return None
    step = plan.steps[outcome.step_index]
    amount = plan.value_price(step)
    parts = [step.operation] + ([plan.validation] if plan.validation is not None else [])
    own = plan.own_providers
    if amount == 0:
        if not any(op.provider in own for op in parts):
            return None
        key_source = "own"
    else:
        paid = [plan.keys[op.provider].source for op in parts if op.provider not in own and plan.prices.get(op.key)]
        key_source = "platform" if "platform" in paid else "none"
    return Charge(
        amount,
        f"enrich:{plan.run_id}:{outcome.row_id}:{plan.column_id}",
        run_id=plan.run_id,
        row_id=outcome.row_id,
        column_id=plan.column_id,
        attempt_id=delivered_by.attempt_id if delivered_by is not None else None,
        provider=step.provider.name,
        operation=step.operation.key,
        key_source=key_source,
    )


@dataclass
class WriteSummary:
    written: int = 0
    finals: int = 0
    credits: int = 0
    out_of_credits: bool = False
    # Seconds spent in the credit charges of the batch (the bench reports the share).
    charge_s: float = 0.0


def write_outcomes(  # noqa: C901 - the one place a batch's results are filed
    table: Table,
    plan: RunPlan,
    outcomes: Sequence[RowOutcome],
    *,
    owner: str | None = None,
    callback_id: str | None = None,
) -> WriteSummary:
    """File a batch's outcomes in the caller's transaction, for the rows this worker still holds.

    Rows whose lease was taken away (cancelled, or reclaimed by the reconciler) are skipped, so
    their results are dropped and nothing is charged for them.
    """
    from morket.credits.service import InsufficientCredits, charge_many

    summary = WriteSummary()
    rr = EnrichmentRunRow.__table__
    ids = sorted(o.row_id for o in outcomes)
    if not ids:
        return summary
    guard = rr.c.status == "leased"
    if owner is not None:
        guard = sa.and_(guard, rr.c.lease_owner == owner)
    if callback_id is not None:
        guard = sa.and_(rr.c.status == "awaiting_callback", rr.c.callback_id == callback_id)
    # The batch's ids joined as an array: one primary-key probe per row, whatever the statistics
    # (an IN list could be planned as a scan of the partial lease index over every run's rows).
    batch = (
        sa.func.unnest(sa.cast(sa.literal(ids), pg.ARRAY(sa.BigInteger)))
        .table_valued("row_id")
        .render_derived(name="batch")
    )
    held = set(
        db.session.scalars(
            sa.select(rr.c.row_id)
            .select_from(batch.join(rr, sa.and_(rr.c.run_id == plan.run_id, rr.c.row_id == batch.c.row_id)))
            .where(guard)
            .order_by(rr.c.row_id)
            .with_for_update(of=rr)
        )
    )
    outcomes = [o for o in sorted(outcomes, key=lambda o: o.row_id) if o.row_id in held]
    if not outcomes:
        return summary

    # Attempt ids first, so each ledger entry can point at the attempt that caused it.
    records = [a for o in outcomes for a in o.attempt_log if a.record]
    for record, attempt_id in zip(records, _allocate_attempt_ids(len(records)), strict=True):
        record.attempt_id = attempt_id

    # Attempts, with what each call cost at the provider (the workspace's charges come last).
    attempt_rows = [
        {
            "id": a.attempt_id,
            "workspace_id": plan.workspace_id,
            "run_id": plan.run_id,
            "row_id": o.row_id,
            "column_id": plan.column_id,
            "provider": a.provider,
            "operation": a.operation,
            "step_index": a.step_index,
            "outcome": a.outcome,
            "http_status": a.http_status,
            "latency_ms": a.latency_ms,
            "cost": max(a.cost, 0),
            "key_source": a.key_source,
            "cached": a.cached,
            "message": (a.message or None) and str(a.message)[:1000],
        }
        for o in outcomes
        for a in o.attempt_log
        if a.record
    ]
    if attempt_rows:
        # One INSERT over arrays: a single statement whatever the batch size, whose text never
        # changes (a multi-row VALUES is compiled again for every batch; executemany sends one
        # statement per attempt).
        arrays = {name: [r[name] for r in attempt_rows] for name in _ATTEMPT_ARRAYS}
        db.session.execute(
            _INSERT_ATTEMPTS,
            {"workspace_id": plan.workspace_id, "run_id": plan.run_id, "column_id": plan.column_id, **arrays},
        )
    # What the workspace pays: one charge per delivered value (the charging rule).
    billed = [(o, c) for o in outcomes if (c := delivery_charge(plan, o)) is not None]
    summary.credits = sum(c.amount for _, c in billed)

    fresh = {
        a.cache_key: cache.CachedAnswer(a.outcome, a.cache_values or {})
        for o in outcomes
        for a in o.attempt_log
        if a.cache_key is not None and not a.cached
    }
    cache.store_many(plan.workspace_id, fresh, plan.cache_ttl)

    # The user table: values of successful rows, then every row's cell state.
    store = storage.storage_for(table)
    rows = store.rows
    changes = _cell_updates(table, plan, outcomes)
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = defaultdict(list)
    for o in outcomes:
        cells = changes.get(o.row_id, {})
        key = tuple(sorted(cells))
        message = o.message if o.state in ("error", "retrying", "rate_limited") else None
        groups[key].append(
            {
                "_row": o.row_id,
                "_state": _state_patch(plan.column_id, o.state, plan.run_id, o.provider, message),
                **{f"v_{cid}": cells[cid] for cid in key},
            }
        )
    # One UPDATE over arrays per set of written columns: its text depends only on those columns, so
    # it is built and compiled once (a VALUES list is compiled again for every batch; an
    # executemany would be one statement per row).
    for key, params in groups.items():
        kinds = tuple(storage.sql_type(store.types[cid]) for cid in key)
        arrays: dict[str, list[Any]] = {
            "_row": [p["_row"] for p in params],
            "_state": [json.dumps(p["_state"]) for p in params],
        }
        for i, (cid, kind) in enumerate(zip(key, kinds, strict=True)):
            arrays[f"v{i}"] = [_array_item(kind, p[f"v_{cid}"]) for p in params]
        statement = _cells_update(rows.schema, rows.name, tuple(store.columns[cid].name for cid in key), kinds)
        db.session.execute(statement, arrays)
    from morket.tables import service as table_service
    from morket.workspaces.models import Workspace

    workspace = db.session.get(Workspace, plan.workspace_id)
    changed = {plan.column_id} | {cid for cells in changes.values() for cid in cells}
    table_service._mark_views_stale(workspace, table, changed)  # noqa: SLF001 - views filtered on these cells

    # The run rows, in one statement over arrays (an executemany would be one statement per row).
    now = utcnow()
    kinds = {"final": "done", "retry": "pending", "await": "awaiting_callback", "release": "pending"}
    columns: dict[str, list[Any]] = defaultdict(list)
    for o in outcomes:
        columns["row_id"].append(o.row_id)
        columns["status"].append(kinds[o.kind])
        columns["state"].append(o.state if o.kind == "final" else None)
        columns["step_index"].append(o.step_index)
        columns["attempts"].append(o.attempts)
        columns["next_attempt_at"].append(o.next_attempt_at or now)
        columns["lease_expires_at"].append(
            now + timedelta(seconds=CALLBACK_TIMEOUT_SECONDS) if o.kind == "await" else None
        )
        columns["callback_id"].append(o.callback_id if o.kind == "await" else None)
        columns["provider"].append(o.provider)
        columns["message"].append((o.message or None) and str(o.message)[:1000])
        # A row given back keeps an asynchronous answer it holds: it is continued, not asked again.
        columns["keep_result"].append(o.kind == "release")
    db.session.execute(
        sa.text(
            "UPDATE enrichment_run_rows AS rr SET status = v.status, state = v.state,"
            " step_index = v.step_index, attempts = v.attempts, next_attempt_at = v.next_attempt_at,"
            " lease_owner = NULL, lease_expires_at = v.lease_expires_at, callback_id = v.callback_id,"
            " provider = v.provider, message = v.message,"
            " result = CASE WHEN v.keep_result THEN rr.result END"
            " FROM unnest(CAST(:row_id AS bigint[]), CAST(:status AS text[]), CAST(:state AS text[]),"
            " CAST(:step_index AS int[]), CAST(:attempts AS int[]), CAST(:next_attempt_at AS timestamptz[]),"
            " CAST(:lease_expires_at AS timestamptz[]), CAST(:callback_id AS text[]), CAST(:provider AS text[]),"
            " CAST(:message AS text[]), CAST(:keep_result AS boolean[]))"
            " AS v(row_id, status, state, step_index, attempts, next_attempt_at, lease_expires_at, callback_id,"
            " provider, message, keep_result)"
            " WHERE rr.run_id = :run_id AND rr.row_id = v.row_id"
        ),
        {"run_id": plan.run_id, **columns},
    )

    finals = [o for o in outcomes if o.kind == "final"]
    counts = defaultdict(int)
    for o in finals:
        counts[{"success": "succeeded", "no_data": "no_data", "error": "failed"}.get(o.state, "failed")] += 1
    runs = EnrichmentRun.__table__
    if finals or summary.credits:
        db.session.execute(
            sa.update(runs)
            .where(runs.c.id == plan.run_id)
            .values(
                done=runs.c.done + len(finals),
                succeeded=runs.c.succeeded + counts["succeeded"],
                no_data=runs.c.no_data + counts["no_data"],
                failed=runs.c.failed + counts["failed"],
                credits_used=runs.c.credits_used + summary.credits,
                updated_at=sa.func.clock_timestamp(),
            )
        )
    # Charges last, all in one statement: the first takes the workspace's balance row lock until
    # the commit, so the shorter the stretch after it, the less two workers' batches queue behind
    # each other.
    refunded = 0
    charging_since = time.perf_counter()
    try:
        entries = charge_many(plan.workspace_id, [c for _, c in billed])
    except InsufficientCredits:
        raise OutOfCredits from None
    for (_, c), entry in zip(billed, entries, strict=True):
        if entry is None:
            # The row's value was paid for before (a replayed batch): it costs nothing more.
            refunded += c.amount
    summary.charge_s = time.perf_counter() - charging_since
    if refunded:
        db.session.execute(
            sa.update(runs).where(runs.c.id == plan.run_id).values(credits_used=runs.c.credits_used - refunded)
        )
        summary.credits -= refunded
    summary.written = len(outcomes)
    summary.finals = len(finals)
    return summary


# --- run status ------------------------------------------------------------------------------------


def pause_run(run_id: int, reason: str) -> bool:
    """Pause a running run (its leases are released by the caller); False when it was not running."""
    runs = EnrichmentRun.__table__
    result = db.session.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_(ACTIVE_RUN_STATUSES))
        .values(status="paused", pause_reason=reason, updated_at=sa.func.clock_timestamp())
    )
    return bool(result.rowcount)


def finish_if_done(run_id: int) -> bool:
    """Complete the run when no row is open any more; True when this call completed it."""
    runs = EnrichmentRun.__table__
    rr = EnrichmentRunRow.__table__
    open_rows = sa.exists().where(rr.c.run_id == run_id, rr.c.status.in_(OPEN_ROW_STATUSES))
    result = db.session.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_((*ACTIVE_RUN_STATUSES, "paused")), ~open_rows)
        .values(
            status="completed",
            pause_reason=None,
            finished_at=sa.func.clock_timestamp(),
            updated_at=sa.func.clock_timestamp(),
        )
    )
    return bool(result.rowcount)


def release_leases(run_id: int, owner: str) -> int:
    """Give this worker's leased rows of the run back (pending, due now)."""
    rr = EnrichmentRunRow.__table__
    result = db.session.execute(
        sa.update(rr)
        .where(rr.c.run_id == run_id, rr.c.status == "leased", rr.c.lease_owner == owner)
        .values(status="pending", lease_owner=None, lease_expires_at=None, next_attempt_at=sa.func.clock_timestamp())
    )
    return result.rowcount or 0


def alive_key(run_id: int, slot: int) -> str:
    return f"{ALIVE_PREFIX}:{run_id}:{slot}"


def jobs_per_run() -> int:
    return max(1, int(_setting("ENRICHMENT_JOBS_PER_RUN", 2)))


def enqueue_jobs(run_id: int, suffix: str = "") -> None:
    """Write the run's jobs to the outbox (ids ``enrich-<run>-<k>[-suffix]``; a relay dedupes them)."""
    for slot in range(jobs_per_run()):
        job_id = f"enrich-{run_id}-{slot}" + (f"-{suffix}" if suffix else "")
        enqueue_after_commit(
            "morket.enrichment.tasks.run_enrichment", run_id, slot, queue=QUEUE_ENRICHMENT, job_id=job_id
        )


def ensure_jobs(run_id: int, tag: str) -> int:
    """Enqueue a job for each slot of the run that no live job holds; return how many."""
    redis = redis_client()
    started = 0
    for slot in range(jobs_per_run()):
        if redis.exists(alive_key(run_id, slot)):
            continue
        enqueue_after_commit(
            "morket.enrichment.tasks.run_enrichment",
            run_id,
            slot,
            queue=QUEUE_ENRICHMENT,
            job_id=f"enrich-{run_id}-{slot}-{tag}",
        )
        started += 1
    return started


# --- the job ---------------------------------------------------------------------------------------


@dataclass
class _Batch:
    services: CallServices
    futures: list[Future[RowOutcome]]
    missing: list[int]


def _worker_id(slot: int) -> str:
    return f"{socket.gethostname()[:24]}:{os.getpid()}:{slot}:{uuid.uuid4().hex[:8]}"


def _commit() -> None:
    db.session.commit()


def work(run_id: int, slot: int = 0, *, budget: float | None = None) -> dict[str, Any]:  # noqa: C901 - the job loop
    """Work on a run until no row is claimable, the budget is spent, or the run pauses or ends."""
    budget = JOB_BUDGET_SECONDS if budget is None else budget
    deadline = time.monotonic() + budget
    stats: dict[str, Any] = {"batches": 0, "rows": 0, "finals": 0, "write_s": 0.0, "charge_s": 0.0, "wait_s": 0.0}
    run = db.session.get(EnrichmentRun, run_id)
    if run is None or run.status not in ACTIVE_RUN_STATUSES:
        return stats
    table = db.session.get(Table, run.table_id)
    column = db.session.get(Column, run.column_id)
    if table is None or column is None or column.deleted_at is not None:
        _fail(run, "The table or the enrichment column was deleted.", None)
        return stats
    try:
        plan = build_plan(run)
    except Exception as exc:  # noqa: BLE001 - a broken configuration or an unreadable key fails the run
        log.exception("enrichment run cannot start", extra={"data": {"run_id": run_id}})
        db.session.rollback()
        run = db.session.get(EnrichmentRun, run_id)
        table = db.session.get(Table, run.table_id) if run is not None else None
        reason = exc.message if isinstance(exc, MorketError) else f"The column's settings cannot be used: {exc}"
        _fail(run, f"The run could not start: {reason}", table)
        return stats
    if run.status == "queued":
        run.status = "running"
        run.started_at = run.started_at or utcnow()
    _commit()

    batch_rows = max(1, int(_setting("ENRICHMENT_BATCH_ROWS", 50)))
    lease = max(5, int(_setting("ENRICHMENT_LEASE_SECONDS", 120)))
    concurrency = max(1, int(_setting("ENRICHMENT_CONCURRENCY", 8)))
    owner = _worker_id(slot)
    redis = redis_client()
    engine = db.engine
    more_left = False
    redis_down = threading.Event()

    def launch(claimed: list[tuple[int, int, int, str | None, Any]], pool: ThreadPoolExecutor) -> _Batch:
        """Mark, read and prefetch a claimed batch, commit, and hand its rows to the pool."""
        lease_deadline = time.monotonic() + lease
        mark_cells(table, plan.column_id, run_id, [c[0] for c in claimed], "running")
        rows = read_rows(table, plan, claimed)
        missing = sorted({c[0] for c in claimed} - {r.row_id for r in rows})
        prefetched = prefetch_cache(plan, rows)
        _commit()
        services = CallServices(
            plan=plan,
            client=client,
            redis=redis,
            engine=engine,
            lease_deadline=lease_deadline,
            prefetched=prefetched,
            lease_margin=min(LEASE_MARGIN_SECONDS, lease / 4),
            config=settings(),
            redis_down=redis_down,
        )
        worker = RowWorker(services)
        return _Batch(services, [pool.submit(worker, row) for row in rows], missing)

    def file(batch: _Batch) -> bool:
        """Write a batch's outcomes once its calls are done; False when the job must stop."""
        waiting_since = time.perf_counter()
        outcomes = [future.result() for future in batch.futures]
        outcomes += [RowOutcome(r, "final", "skipped", message="The row was deleted.") for r in batch.missing]
        writing_since = time.perf_counter()
        summary = _write_with_retry(table, plan, outcomes, owner)
        if redis_down.is_set():
            pause_run(run_id, PAUSE_REDIS)
        _commit()
        stats["wait_s"] += writing_since - waiting_since
        stats["write_s"] += time.perf_counter() - writing_since
        stats["charge_s"] += summary.charge_s
        stats["batches"] += 1
        stats["rows"] += summary.written
        stats["finals"] += summary.finals
        return not (redis_down.is_set() or summary.out_of_credits)

    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    with httpx.Client(timeout=CALL_TIMEOUT_SECONDS, limits=limits) as client, ThreadPoolExecutor(concurrency) as pool:
        # Two batches overlap: the next one's provider calls run while this one is written.
        inflight: _Batch | None = None
        while True:
            halt = False
            if time.monotonic() >= deadline:
                more_left = halt = True
            elif db.session.scalar(sa.select(EnrichmentRun.status).where(EnrichmentRun.id == run_id)) not in (
                ACTIVE_RUN_STATUSES
            ):
                halt = True
            if not halt:
                try:
                    redis.set(alive_key(run_id, slot), owner, ex=lease + 30)
                except RedisError:
                    redis_down.set()
                    pause_run(run_id, PAUSE_REDIS)
                    halt = True
            if not halt and plan.needs_credits:
                from morket.credits.service import balance

                if balance(plan.workspace_id) < max(plan.min_balance, 1):
                    pause_run(run_id, PAUSE_CREDITS)
                    halt = True
            batch = None
            if not halt:
                claimed = claim_rows(run_id, owner, batch_rows, lease)
                if claimed:
                    batch = launch(claimed, pool)
            _commit()
            if inflight is not None and not file(inflight):
                halt = True
            if halt:
                if batch is not None:
                    batch.services.stop.set()  # rows not started yet go back untouched
                    file(batch)
                break
            if batch is None and inflight is None:
                finished = finish_if_done(run_id)
                _commit()
                if finished:
                    break
                next_due = db.session.scalar(
                    sa.select(sa.func.min(EnrichmentRunRow.next_attempt_at)).where(
                        EnrichmentRunRow.run_id == run_id, EnrichmentRunRow.status == "pending"
                    )
                )
                _commit()
                if next_due is None:
                    break  # what is left is leased by another job or awaiting callbacks
                wait = (next_due - utcnow()).total_seconds()
                if time.monotonic() + wait >= deadline:
                    more_left = True
                    break
                time.sleep(min(max(wait, 0.05), 2.0))
            inflight = batch
    stats["job_s"] = time.monotonic() - (deadline - budget)
    # Whatever this job still holds goes back (a pause or a budget end mid-way).
    release_leases(run_id, owner)
    finish_if_done(run_id)
    _commit()
    with contextlib.suppress(RedisError):
        redis.delete(alive_key(run_id, slot))
    if more_left:
        enqueue_after_commit(
            "morket.enrichment.tasks.run_enrichment",
            run_id,
            slot,
            queue=QUEUE_ENRICHMENT,
            job_id=f"enrich-{run_id}-{slot}-c{int(time.time())}",
        )
        _commit()
    return stats


def _write_with_retry(table: Table, plan: RunPlan, outcomes: Sequence[RowOutcome], owner: str) -> WriteSummary:
    """Write the batch; a deadlock or serialisation failure is retried (the rows are still leased).

    When the credits run out part-way, the whole batch is written again with every row that
    needed a charge given back (its answer is not delivered, so nothing is owed), and the run
    pauses until credits are added.
    """
    short = False
    for attempt in range(3):
        try:
            summary = write_outcomes(table, plan, outcomes, owner=owner)
            if short:
                summary.out_of_credits = True
                pause_run(plan.run_id, PAUSE_CREDITS)
            return summary
        except OutOfCredits:
            db.session.rollback()
            if attempt == 2:
                raise
            # First try: keep the rows the balance covers, in order; then: keep none.
            from morket.credits.service import balance

            left = balance(plan.workspace_id) if not short else 0
            short = True
            for o in sorted(outcomes, key=lambda o: o.row_id):
                owed = delivery_charge(plan, o)
                cost = owed.amount if owed is not None else 0
                if cost <= 0:
                    continue
                if cost <= left:
                    left -= cost
                else:
                    o.release()
            continue
        except DBAPIError as exc:
            code = getattr(getattr(exc, "orig", None), "sqlstate", None)
            db.session.rollback()
            if code not in ("40P01", "40001") or attempt == 2:
                raise
            for o in outcomes:
                for a in o.attempt_log:
                    if a.record:
                        a.attempt_id = None
    raise AssertionError("unreachable")


def _fail(run: EnrichmentRun | None, message: str, table: Table | None) -> None:
    """End a run that cannot go on: every open row, and its cell, ends as an error with the reason.

    Nothing of such a run was delivered, so nothing is charged. Without ``table`` (it was
    deleted) there are no cells left to mark.
    """
    if run is None:
        return
    runs = EnrichmentRun.__table__
    rr = EnrichmentRunRow.__table__
    reason = message[:1000]
    ended = list(
        db.session.scalars(
            sa.update(rr)
            .where(rr.c.run_id == run.id, rr.c.status.in_(OPEN_ROW_STATUSES))
            .values(
                status="done",
                state="error",
                message=reason,
                lease_owner=None,
                lease_expires_at=None,
                callback_id=None,
                result=None,
            )
            .returning(rr.c.row_id)
        )
    )
    db.session.execute(
        sa.update(runs)
        .where(runs.c.id == run.id, runs.c.status.in_((*ACTIVE_RUN_STATUSES, "paused")))
        .values(
            status="failed",
            pause_reason=reason,
            done=runs.c.done + len(ended),
            failed=runs.c.failed + len(ended),
            finished_at=sa.func.clock_timestamp(),
            updated_at=sa.func.clock_timestamp(),
        )
    )
    if table is not None and ended:
        mark_cells(table, run.column_id, run.id, ended, "error", message=reason)
    _commit()


# --- the reconciler --------------------------------------------------------------------------------


def expire_leases() -> list[int]:
    """Put rows whose lease ran out back to pending; return each such row's run id."""
    rr = EnrichmentRunRow.__table__
    result = db.session.execute(
        sa.update(rr)
        .where(rr.c.status == "leased", rr.c.lease_expires_at < sa.func.clock_timestamp())
        .values(status="pending", lease_owner=None, lease_expires_at=None, next_attempt_at=sa.func.clock_timestamp())
        .returning(rr.c.run_id)
    )
    return [r[0] for r in result]


def expire_callbacks() -> list[int]:
    """Rows whose asynchronous answer never came move on to the next step; return their run ids."""
    rr = EnrichmentRunRow.__table__
    result = db.session.execute(
        sa.update(rr)
        .where(rr.c.status == "awaiting_callback", rr.c.lease_expires_at < sa.func.clock_timestamp())
        .values(
            status="pending",
            step_index=rr.c.step_index + 1,
            attempts=0,
            callback_id=None,
            lease_expires_at=None,
            next_attempt_at=sa.func.clock_timestamp(),
            message="The provider's callback did not arrive in time.",
        )
        .returning(rr.c.run_id)
    )
    return [r[0] for r in result]


def _resume_balance(run_id: int) -> int:
    """The balance a run paused for credits needs before it is worth resuming."""
    run = db.session.get(EnrichmentRun, run_id)
    try:
        return max(build_plan(run, resolve_keys=False).min_balance, 1)
    except Exception:  # noqa: BLE001 - a run whose settings no longer load resumes and fails with a reason
        return 1


def redis_answers() -> bool:
    try:
        return bool(redis_client().ping())
    except RedisError:
        return False


def reconcile() -> dict[str, int]:
    """Re-queue expired leases, time out callbacks, resume paused runs, restart runs with no job."""
    from morket.credits.service import balance

    report = {"leases": 0, "callbacks": 0, "resumed": 0, "completed": 0, "jobs": 0}
    report["leases"] = len(expire_leases())
    report["callbacks"] = len(expire_callbacks())
    _commit()
    redis_ok = redis_answers()
    runs = EnrichmentRun.__table__
    tag = f"r{int(time.time())}"
    paused = db.session.execute(
        sa.select(runs.c.id, runs.c.workspace_id, runs.c.pause_reason).where(runs.c.status == "paused")
    ).all()
    for run_id, workspace_id, reason in paused:
        if finish_if_done(run_id):
            report["completed"] += 1
            continue
        if not redis_ok:
            continue
        if reason == PAUSE_CREDITS and balance(workspace_id) < _resume_balance(run_id):
            continue
        db.session.execute(
            sa.update(runs)
            .where(runs.c.id == run_id, runs.c.status == "paused")
            .values(status="running", pause_reason=None, updated_at=sa.func.clock_timestamp())
        )
        report["resumed"] += 1
    _commit()
    active = db.session.scalars(sa.select(runs.c.id).where(runs.c.status.in_(ACTIVE_RUN_STATUSES))).all()
    for run_id in active:
        if finish_if_done(run_id):
            report["completed"] += 1
            continue
        if not redis_ok:
            continue
        rr = EnrichmentRunRow.__table__
        soon = db.session.scalar(
            sa.select(sa.func.count())
            .select_from(rr)
            .where(
                rr.c.run_id == run_id,
                rr.c.status == "pending",
                rr.c.next_attempt_at <= sa.func.clock_timestamp() + sa.text("interval '30 seconds'"),
            )
        )
        if soon:
            try:
                report["jobs"] += ensure_jobs(run_id, tag)
            except RedisError:
                redis_ok = False
    _commit()
    cache.purge_expired()
    _commit()
    return report
