"""One row's provider waterfall (the enrichment executor's row work; runs in a pool thread).

Cache, breaker, limiter, provider, validation: each step from the row's current one until a value
is found and accepted. No database session here (the cache was read for the batch before).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from redis.exceptions import RedisError

from morket.core.db import utcnow
from morket.enrichment import cache, mapping
from morket.enrichment.plan import RunPlan, StepPlan
from morket.providers.base import CallContext, Operation, Provider, Result
from morket.runs.callbacks import backoff_seconds
from morket.runs.executor import Release, RowOutcome
from morket.runs.limits import CALL_TIMEOUT_SECONDS, CallScope

log = logging.getLogger("morket.enrichment")

# Retries of one step of one row before the step counts as failed and the waterfall moves on.
MAX_ATTEMPTS = 5


@dataclass
class RowInput:
    row_id: int
    step_index: int
    attempts: int
    values: dict[int, Any]
    message: str | None = None
    # An asynchronous answer delivered by a callback (for the step it names, else step_index).
    stored_result: dict[str, Any] | None = None
    # The id an asynchronous provider's answer for this row will carry (reserved with the lease).
    callback_id: str | None = None


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
    """The operation's inputs from the row's mapped columns (all mapped ones for free-form operations).

    A derived mapping (the first name of a full name, the domain of an email) sends that part only.
    """
    names = {spec.name for spec in step.operation.inputs}
    found: dict[str, Any] = {}
    for name, column_id in plan.config.inputs.items():
        if names and name not in names:
            continue
        value = mapping.derive_input(plan.config.derive.get(name), cell_input(values.get(column_id)))
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


def _answers(row: RowInput, step_index: int) -> bool:
    """Whether the asynchronous answer the row holds is the answer of step ``step_index``."""
    stored = row.stored_result
    if not stored or "outcome" not in stored:
        return False
    return int(stored.get("step_index", row.step_index)) == step_index


def _is_empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class RowWorker:
    """Runs one row's waterfall: cache, breaker, limiter, provider, validation."""

    def __init__(
        self, plan: RunPlan, scope: CallScope, prefetched: Mapping[cache.CacheKey, cache.CachedAnswer]
    ) -> None:
        self.s = scope
        self.plan = plan
        self.prefetched = prefetched

    def __call__(self, row: RowInput) -> RowOutcome:
        try:
            outcome = self._waterfall(row)
            outcome.origin = (row.step_index, row.attempts)
            return outcome
        except Release:
            return RowOutcome(row.row_id, "release", "queued", step_index=row.step_index, attempts=row.attempts)
        except RedisError as exc:
            self.s.redis_down.set()
            log.warning(
                "Redis unreachable during a run", extra={"data": {"run_id": self.plan.run_id, "error": str(exc)}}
            )
            return RowOutcome(row.row_id, "release", "queued", step_index=row.step_index, attempts=row.attempts)

    # The waterfall: try each step from the row's current one until a value is found and accepted.
    def _waterfall(self, row: RowInput) -> RowOutcome:  # one branch per outcome
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
                raise Release
            attempts = row.attempts if step.index == row.step_index else 0
            stored = row.stored_result if _answers(row, step.index) else None
            inputs = step_inputs(plan, step, row.values)
            last_provider = step.provider.name
            problem = missing_inputs(step.operation, inputs)
            if problem:
                log_.append(
                    AttemptRecord(step.provider.name, step.operation.key, step.index, "invalid_input", message=problem)
                )
                error = problem
                continue
            result, record = self._call(
                step.provider,
                step.operation,
                step.index,
                inputs,
                step.options,
                stored,
                callback_id=row.callback_id,
            )
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
            plan.validation_provider,
            plan.validation,
            step.index,
            {rule.input: checked},
            {},
            None,
            True,
            callback_id=None,
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
        *,
        callback_id: str | None,
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
        answer = self.prefetched.get(key)
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
            raise Release
        breaker = self.s.breaker(provider.name)
        bucket = self.s.bucket(provider.name, key_info.limiter_id, plan.rates.get(provider.name, 10.0))
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
            raise Release
        if self.s.stop.is_set():
            raise Release
        # The row holds its answer's id since the lease (``morket.runs.callbacks``).
        callback_url = f"{plan.callback_base}/{provider.name}" if op.asynchronous else None
        ctx = CallContext(
            client=self.s.client,
            api_key=key_info.secret,
            base_url=plan.base_urls[provider.name],
            timeout=CALL_TIMEOUT_SECONDS,
            callback_url=callback_url,
            callback_id=callback_id if op.asynchronous else None,
        )
        started = time.perf_counter()
        try:
            result = provider.call(op, inputs, ctx, options)
        except Exception as exc:  # an adapter bug is recorded as a retryable failure
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
