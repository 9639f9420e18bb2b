"""The CRM calls of a push and its preview: batch upsert and batch read by key, under the shared limiter.

HubSpot: ``POST /crm/v3/objects/{object}/batch/upsert`` (100 inputs, ``idProperty``; each input
carries ``objectWriteTraceId`` = the Morket row id, which HubSpot echoes on its result or error)
and ``batch/read`` by ``idProperty``. Salesforce: sObject Collections upsert by external id
(``PATCH /composite/sobjects/{SObject}/{Field}``, 200 records, ``allOrNone: false``, results in
order) and a SOQL ``WHERE field IN (…)`` read. The calls are plain httpx with the connection's
bearer token: the push's pool threads have no database session, so the job thread hands them
the token (``LiveToken``) and a 401 sends the rows back for the job to refresh once.

Limits, shared by every worker through Redis, one limiter per connection: HubSpot's is a rolling
window (``core.throttle.SlidingWindow``) of ``X-HubSpot-RateLimit-Max`` calls per
``-Interval-Milliseconds`` (learned from the first answer and kept in Redis; ``-Remaining`` counts
other apps' calls on the portal), so a whole window goes out at once and each slot is reused the
moment HubSpot frees it; a 429 blocks it for its ``Retry-After``. Salesforce's is a token bucket
(``core.throttle.TokenBucket``): ``Sforce-Limit-Info`` (api-usage=n/limit) at its limit, or a 403
``REQUEST_LIMIT_EXCEEDED``, blocks it for ``LIMIT_BACKOFF_SECONDS``. A whole-batch 400 is split in
halves until the rows at fault are alone, so each row gets the CRM's own message.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
from redis import Redis

from morket.core.throttle import SlidingWindow, TokenBucket
from morket.crm.client import error_message, json_body
from morket.crm.providers import HUBSPOT, SALESFORCE_API_VERSION, get_spec

HUBSPOT_BATCH = 100
SALESFORCE_BATCH = 200
# HubSpot's own default (100 calls per 10 s) until its headers say otherwise.
HUBSPOT_DEFAULT_RATE = 10.0
HUBSPOT_INTERVAL = 10.0
SALESFORCE_DEFAULT_RATE = 20.0
LIMIT_BACKOFF_SECONDS = 60.0
RATE_KEY = "morket:crm-rate:{}"
_LIMIT_INFO = re.compile(r"api-usage=(\d+)/(\d+)")


@dataclass
class PushRecord:
    """One row as a CRM record: its key value and the fields to write."""

    row_id: int
    key: str
    values: dict[str, Any]


@dataclass
class RecordResult:
    """What the CRM said of one record: ``ok`` with its id, ``error`` with its message, or ``retry``."""

    status: str  # ok, error, retry, session
    record_id: str | None = None
    created: bool = False
    message: str | None = None
    delay: float = 0.0


@dataclass
class Target:
    """Where a push writes: the connection, object and key; what the pool threads need, nothing more."""

    provider: str
    connection_id: int
    object: str
    key_field: str
    base_url: str  # HubSpot's API URL or Salesforce's instance URL
    kinds: dict[str, str] = field(default_factory=dict)  # field name -> mapping.field_kind

    @property
    def batch_size(self) -> int:
        return HUBSPOT_BATCH if self.provider == HUBSPOT else SALESFORCE_BATCH


def base_url(provider: str, settings: Mapping[str, Any], instance_url: str | None) -> str:
    if provider == HUBSPOT:
        return get_spec(HUBSPOT).setting(settings, "API_URL")  # type: ignore[union-attr]
    return f"{(instance_url or '').rstrip('/')}/services/data/v{SALESFORCE_API_VERSION}"


# --- values ------------------------------------------------------------------------------------------


def _number_text(value: Decimal | float | int) -> str:
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return str(value.quantize(Decimal(1)))
        return format(value.normalize(), "f")
    return str(value)


def to_crm(value: Any, kind: str, provider: str) -> Any:
    """A cell value as the CRM field takes it (None: blank, not sent: a push never wipes a CRM value)."""
    if isinstance(value, dict) and "value" in value and "provider" in value:
        value = value.get("value")  # an enrichment cell sends its value
    if value is None or (isinstance(value, str) and not value.strip()) or value == []:
        return None
    if isinstance(value, bool):
        return value if provider != HUBSPOT else ("true" if value else "false")
    if isinstance(value, Decimal | int | float):
        if provider != HUBSPOT and kind == "number":
            return int(value) if Decimal(str(value)) == Decimal(str(value)).to_integral_value() else float(value)
        return _number_text(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    text = str(value).strip()
    if kind == "email":
        return text.lower()
    if provider != HUBSPOT and kind == "number":
        try:
            number = Decimal(text)
        except InvalidOperation:
            return text  # Salesforce says what is wrong with it
        return int(number) if number == number.to_integral_value() else float(number)
    return text


def same_value(ours: Any, theirs: Any, kind: str) -> bool:
    """Whether the CRM already holds what the push would send."""
    if theirs is None or theirs == "":
        return ours is None
    a, b = str(ours).strip(), str(theirs).strip()
    if kind == "email":
        return a.casefold() == b.casefold()
    if kind == "number":
        try:
            return Decimal(a) == Decimal(b)
        except InvalidOperation:
            return a == b
    if kind == "bool":
        return a.lower() == b.lower()
    if kind == "date":
        return a[:10] == b[:10] if len(a) <= 10 or len(b) <= 10 else a == b
    return a == b


# --- the limiter ---------------------------------------------------------------------------------------


class Limiter:
    """The connection's share of the CRM's limit, across every worker (Redis).

    HubSpot: a rolling window of ``X-HubSpot-RateLimit-Max`` calls per ``-Interval-Milliseconds``
    (``core.throttle.SlidingWindow``, the shape of HubSpot's own limit), learned from the answers
    and kept in Redis; ``-Remaining`` below what our own calls explain (another app on the same
    portal) fills the window's difference. Salesforce: a token bucket, blocked at its daily limit.
    """

    def __init__(self, redis: Redis, target: Target, backoff: float = LIMIT_BACKOFF_SECONDS) -> None:
        self.redis = redis
        self.target = target
        self.backoff = backoff
        self._rate = 0.0
        self._bucket: TokenBucket | None = None
        self._shape: tuple[int, float] = (0, 0.0)
        self._window: SlidingWindow | None = None

    def _key(self) -> str:
        return RATE_KEY.format(self.target.connection_id)

    def _limiter_key(self) -> str:
        return f"crm:{self.target.provider}:{self.target.connection_id}"

    def bucket(self) -> TokenBucket:
        stored = self.redis.get(self._key())
        default = HUBSPOT_DEFAULT_RATE if self.target.provider == HUBSPOT else SALESFORCE_DEFAULT_RATE
        rate = float(stored) if stored else default
        if self._bucket is None or rate != self._rate:
            self._rate = rate
            # A burst of one call: the CRM's window is rolling, so calls are spread, not bunched.
            self._bucket = TokenBucket(self.redis, self._limiter_key(), rate=rate, burst=1.0)
        return self._bucket

    def window(self) -> SlidingWindow:
        """HubSpot's rolling window as last learned: ``"<max> <interval ms>"`` (or a plain calls/s)."""
        stored = self.redis.get(self._key())
        limit, interval = int(HUBSPOT_DEFAULT_RATE * HUBSPOT_INTERVAL), HUBSPOT_INTERVAL
        if stored:
            parts = (stored.decode() if isinstance(stored, bytes) else str(stored)).split()
            try:
                if len(parts) == 2:
                    limit, interval = int(parts[0]), int(parts[1]) / 1000.0
                else:
                    limit = max(1, round(float(parts[0]) * HUBSPOT_INTERVAL))
            except ValueError:
                pass
        if self._window is None or (limit, interval) != self._shape:
            self._shape = (limit, interval)
            self._window = SlidingWindow(self.redis, self._limiter_key(), limit, interval)
        return self._window

    def wait(self, timeout: float) -> str | None:
        """Take a call from the limit, waiting up to ``timeout`` seconds: the slot's id ("" for a
        bucket's token), or None when none came in time."""
        if self.target.provider == HUBSPOT:
            return self.window().acquire(timeout)
        return "" if self.bucket().acquire(timeout) else None

    def learn(self, response: httpx.Response, slot: str | None = None) -> None:
        """Follow what the CRM's headers say of its limit; ``slot``: the call's, now answered."""
        headers = response.headers
        if self.target.provider == HUBSPOT:
            most, interval = (
                headers.get("X-HubSpot-RateLimit-Max"),
                headers.get("X-HubSpot-RateLimit-Interval-Milliseconds"),
            )
            remaining: int | None = None
            if most and interval:
                try:
                    shape = (int(most), int(interval) / 1000.0)
                    remaining = int(headers.get("X-HubSpot-RateLimit-Remaining", ""))
                except ValueError:
                    shape = self._shape
                if shape[0] > 0 and shape[1] > 0 and shape != self._shape:
                    self.redis.set(self._key(), f"{shape[0]} {round(shape[1] * 1000)}", ex=86400)
            if slot:
                self.window().done(slot, remaining)
            return
        match = _LIMIT_INFO.search(headers.get("Sforce-Limit-Info", ""))
        if match and int(match.group(1)) >= int(match.group(2)):
            self.bucket().block_for(self.backoff)

    def interval(self) -> float:
        """Seconds between two calls at the connection's average rate."""
        if self.target.provider == HUBSPOT:
            window = self.window()
            return window.interval / window.limit
        self.bucket()
        return 1.0 / self._rate

    def block(self, seconds: float) -> None:
        if self.target.provider == HUBSPOT:
            self.window().block_for(seconds)
        else:
            self.bucket().block_for(seconds)


# --- sending -------------------------------------------------------------------------------------------


@dataclass
class Sender:
    """Sends one batch call with the token the job handed over, within the lease's time."""

    http: httpx.Client
    target: Target
    access_token: str
    limiter: Limiter
    deadline: float  # time.monotonic() by which the rows must be back
    stopped: Callable[[], bool] = lambda: False
    calls: int = 0
    rate_limited: int = 0

    def _admitted(self) -> str | None:
        """Wait for the limiter in short slices, so a stop (a cancel, the job's end) is noticed."""
        while True:
            left = self.deadline - time.monotonic()
            if self.stopped() or left <= 0:
                return None
            slot = self.limiter.wait(min(left, 1.0))
            if slot is not None:
                return slot

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response | RecordResult:
        """The CRM's answer, or a RecordResult for every row of the call (retry later, session expired)."""
        while True:
            slot = self._admitted()
            if slot is None:
                return RecordResult("retry", message="Waiting for the CRM's rate limit.", delay=0.0)
            response = self._request(method, path, slot, **kwargs)
            if isinstance(response, httpx.Response) and response.status_code == 429:
                self.rate_limited += 1
                wait = _retry_after(response, 1.0)
                if wait <= self.limiter.interval() and wait < self.deadline - time.monotonic():
                    # The call reached the rolling window a moment early: send it again once the
                    # window moves, with the turn it already took (blocking the bucket would cost
                    # every worker a whole interval).
                    time.sleep(wait)
                    response = self._request(method, path, slot, **kwargs)
                    if not (isinstance(response, httpx.Response) and response.status_code == 429):
                        return self._answer(response)
                self.limiter.block(wait)
                continue
            return self._answer(response)

    def _request(self, method: str, path: str, slot: str, **kwargs: Any) -> httpx.Response | RecordResult:
        try:
            response = self.http.request(
                method,
                f"{self.target.base_url}{path}",
                headers={"Authorization": f"Bearer {self.access_token}"},
                **kwargs,
            )
        except httpx.HTTPError as exc:
            return RecordResult("retry", message=f"Could not reach the CRM ({type(exc).__name__}).", delay=2.0)
        self.calls += 1
        self.limiter.learn(response, slot)
        return response

    def _answer(self, response: httpx.Response | RecordResult) -> httpx.Response | RecordResult:
        """The answer as the push reads it: a RecordResult for every row when it is not per record."""
        if isinstance(response, RecordResult):
            return response
        if response.status_code == 401:
            return RecordResult("session", message="The CRM session expired.")
        if response.status_code == 403 and "REQUEST_LIMIT_EXCEEDED" in response.text:
            self.rate_limited += 1
            self.limiter.block(self.limiter.backoff)
            return RecordResult("retry", message=error_message(response), delay=self.limiter.backoff)
        if response.status_code >= 500:
            return RecordResult("retry", message=error_message(response) or f"HTTP {response.status_code}", delay=2.0)
        return response


def _retry_after(response: httpx.Response, default: float) -> float:
    try:
        return max(0.05, float(response.headers.get("Retry-After") or default))
    except ValueError:
        return default


def _all(records: Sequence[PushRecord], result: RecordResult) -> dict[int, RecordResult]:
    return {r.row_id: result for r in records}


def upsert(sender: Sender, records: Sequence[PushRecord]) -> dict[int, RecordResult]:
    """Upsert ``records`` (at most one batch) by key; a result for every row."""
    if not records:
        return {}
    if sender.target.provider == HUBSPOT:
        answer = _hubspot_upsert(sender, records)
    else:
        answer = _salesforce_upsert(sender, records)
    if isinstance(answer, RecordResult):
        return _all(records, answer)
    if isinstance(answer, httpx.Response):
        # The CRM refused the whole call: halve it until the rows at fault are alone.
        if len(records) > 1:
            middle = len(records) // 2
            return upsert(sender, records[:middle]) | upsert(sender, records[middle:])
        return _all(records, RecordResult("error", message=error_message(answer) or f"HTTP {answer.status_code}"))
    return answer


def _hubspot_upsert(
    sender: Sender, records: Sequence[PushRecord]
) -> dict[int, RecordResult] | httpx.Response | RecordResult:
    target = sender.target
    inputs = [
        {"idProperty": target.key_field, "id": r.key, "properties": r.values, "objectWriteTraceId": str(r.row_id)}
        for r in records
    ]
    response = sender.send("POST", f"/crm/v3/objects/{target.object}/batch/upsert", json={"inputs": inputs})
    if isinstance(response, RecordResult):
        return response
    if response.status_code not in (200, 201, 207):
        return response
    body = json_body(response) or {}
    by_trace = {str(r.row_id): r.row_id for r in records}
    by_key = {_key_norm(target, r.key): r.row_id for r in records}
    found: dict[int, RecordResult] = {}
    for result in body.get("results") or []:
        row_id = by_trace.get(str(result.get("objectWriteTraceId")))
        if row_id is None:
            value = (result.get("properties") or {}).get(target.key_field)
            row_id = by_key.get(_key_norm(target, str(value))) if value is not None else None
        if row_id is not None:
            found[row_id] = RecordResult("ok", record_id=str(result.get("id")), created=bool(result.get("new")))
    for error in body.get("errors") or []:
        context = error.get("context") or {}
        rows = [by_trace[t] for t in context.get("objectWriteTraceId") or [] if t in by_trace]
        rows = rows or [by_key[k] for k in (_key_norm(target, i) for i in context.get("ids") or []) if k in by_key]
        message = _hubspot_message(error)
        for row_id in rows:
            found[row_id] = RecordResult("error", message=message)
    for r in records:
        found.setdefault(r.row_id, RecordResult("retry", message="HubSpot did not answer for this record.", delay=2.0))
    return found


def _hubspot_message(error: Mapping[str, Any]) -> str:
    """HubSpot's message, with the property validation's own words when it nests them."""
    message = str(error.get("message") or error.get("category") or "HubSpot refused this record.")
    nested = re.search(r"(\[\{.*\}\])", message)
    if nested:
        try:
            details = json.loads(nested.group(1))
            return "; ".join(f"{d.get('error', '')}: {d.get('message', '')}".strip(": ") for d in details)
        except ValueError:
            pass
    return message


def _key_norm(target: Target, value: str) -> str:
    value = str(value).strip()
    return value.lower() if target.kinds.get(target.key_field) == "email" else value


def _salesforce_upsert(
    sender: Sender, records: Sequence[PushRecord]
) -> dict[int, RecordResult] | httpx.Response | RecordResult:
    target = sender.target
    body = {
        "allOrNone": False,
        "records": [{"attributes": {"type": target.object}, **r.values, target.key_field: r.key} for r in records],
    }
    response = sender.send("PATCH", f"/composite/sobjects/{target.object}/{target.key_field}", json=body)
    if isinstance(response, RecordResult):
        return response
    if response.status_code != 200:
        return response
    results = json_body(response)
    if not isinstance(results, list) or len(results) != len(records):
        return RecordResult("retry", message="Salesforce's answer did not list every record.", delay=2.0)
    found: dict[int, RecordResult] = {}
    for record, result in zip(records, results, strict=True):
        if result.get("success"):
            found[record.row_id] = RecordResult(
                "ok", record_id=str(result.get("id")), created=bool(result.get("created"))
            )
        else:
            errors = result.get("errors") or [{}]
            first = errors[0]
            message = f"{first.get('statusCode', '')}: {first.get('message', '')}".strip(": ")
            found[record.row_id] = RecordResult("error", message=message or "Salesforce refused this record.")
    return found


# --- reading back (the preview) -------------------------------------------------------------------


def read(sender: Sender, keys: Sequence[str], fields: Sequence[str]) -> dict[str, dict[str, Any]] | RecordResult:
    """The CRM's records whose key is one of ``keys`` (one call's worth), by normalised key."""
    target = sender.target
    if target.provider == HUBSPOT:
        response = sender.send(
            "POST",
            f"/crm/v3/objects/{target.object}/batch/read",
            json={"idProperty": target.key_field, "inputs": [{"id": k} for k in keys],
                  "properties": sorted({*fields, target.key_field})},
        )  # fmt: skip
        if isinstance(response, RecordResult):
            return response
        if response.status_code not in (200, 207):
            return RecordResult("error", message=error_message(response))
        found = {}
        for result in (json_body(response) or {}).get("results") or []:
            props = result.get("properties") or {}
            key = props.get(target.key_field)
            if key is not None:
                found[_key_norm(target, key)] = {"id": result.get("id"), **props}
        return found
    quoted = ", ".join("'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in keys)
    names = ", ".join(dict.fromkeys(["Id", target.key_field, *fields]))
    soql = f"SELECT {names} FROM {target.object} WHERE {target.key_field} IN ({quoted})"  # noqa: S608 - quoted values
    found = {}
    path = "/query"
    params: dict[str, str] | None = {"q": soql}
    while path:
        response = sender.send("GET", path, params=params)
        if isinstance(response, RecordResult):
            return response
        if response.status_code != 200:
            return RecordResult("error", message=error_message(response))
        body = json_body(response) or {}
        for record in body.get("records") or []:
            key = record.get(target.key_field)
            if key is not None:
                found[_key_norm(target, str(key))] = {**record, "id": record.get("Id")}
        following = body.get("nextRecordsUrl")
        path = following.split(f"/v{SALESFORCE_API_VERSION}", 1)[-1] if following else ""
        params = None
    return found
