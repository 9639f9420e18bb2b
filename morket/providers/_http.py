"""What every HTTP adapter does the same way: send with a timeout, classify, keep the key out.

Classification (the engine retries only ``retryable`` and ``rate_limited``):
timeout / connection error / 5xx -> ``retryable``; 429 -> ``rate_limited`` with the wait the
provider asked for; 401 and 403 -> ``auth_error``; 400 and 422 -> ``invalid_input``; 404 ->
``not_found``. Any other status is ``retryable``: an answer we do not understand is not
proof that the row has no data.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx

from morket.providers.base import CallContext, Result

DEFAULT_RETRY_AFTER = 60.0
MAX_MESSAGE = 300


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret replaced, so an error message can be stored and shown."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:MAX_MESSAGE]


def retry_after(response: httpx.Response, default: float = DEFAULT_RETRY_AFTER) -> float:
    """Seconds to wait from Retry-After (seconds or an HTTP date) or X-RateLimit-Reset."""
    value = response.headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            parsed = email.utils.parsedate_to_datetime(value) if value else None
            if parsed is not None:
                return max(0.0, parsed.timestamp() - time.time())
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            number = float(reset)
        except ValueError:
            return default
        # Either an epoch time or a number of seconds, depending on the provider.
        return max(0.0, number - time.time()) if number > 1_000_000_000 else max(0.0, number)
    return default


def json_body(response: httpx.Response) -> Any:
    """The response's JSON, or None when it has none (an HTML error page, say)."""
    try:
        return response.json()
    except ValueError:
        return None


def send(
    ctx: CallContext,
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    content: bytes | str | None = None,
    headers: Mapping[str, str] | None = None,
    secrets: tuple[str | None, ...] = (),
) -> httpx.Response | Result:
    """Send one request with the context's timeout; a transport failure becomes a Result."""
    try:
        return ctx.client.request(
            method,
            url,
            params={k: v for k, v in (params or {}).items() if v not in (None, "")},
            json=json,
            content=content,
            headers=dict(headers or {}),
            timeout=ctx.timeout,
        )
    except httpx.TimeoutException:
        return Result("retryable", message=f"the provider did not answer within {ctx.timeout:g}s")
    except httpx.TransportError as exc:
        name = type(exc).__name__
        return Result("retryable", message=redact(f"could not reach the provider ({name})", *secrets, ctx.api_key))


def classify_error(response: httpx.Response, message: str, *, secrets: tuple[str | None, ...] = ()) -> Result:
    """The Result for a non-success status, with ``message`` (redacted) for the user."""
    status = response.status_code
    text = redact(message or f"HTTP {status}", *secrets)
    if status == 429:
        return Result("rate_limited", http_status=status, retry_after=retry_after(response), message=text)
    if status in (401, 403):
        return Result("auth_error", http_status=status, message=text)
    if status in (400, 422):
        return Result("invalid_input", http_status=status, message=text)
    if status == 404:
        return Result("not_found", http_status=status, message=text)
    return Result("retryable", http_status=status, message=text)


def missing_inputs(inputs: Mapping[str, Any], *names: str) -> Result | None:
    """An ``invalid_input`` Result naming the empty required inputs, or None when all are there."""
    missing = [n for n in names if not str(inputs.get(n) or "").strip()]
    if missing:
        return Result("invalid_input", message="missing input: " + ", ".join(missing))
    return None


def text(value: Any) -> str | None:
    """A stripped string, or None for empty values."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def as_int(value: Any) -> int | None:
    """An int from a provider's number (or numeric string), None when it is not one."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if math.isfinite(number) else None
