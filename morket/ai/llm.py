"""The one call path to a language model: ``complete(endpoint, system=..., prompt=..., schema=...)``.

No Flask and no database here: the AI column's pool threads call it with an ``Endpoint`` that
``morket.ai.service.resolve_endpoint`` built (key already decrypted). Two kinds of endpoint:

- ``openai``: any OpenAI-compatible chat-completions server (OpenAI, Azure, OpenRouter, vLLM,
  Ollama, LM Studio) through the official ``openai`` client; ``base_url`` ends where the client
  appends ``/chat/completions`` (``https://api.openai.com/v1``).
- ``anthropic``: the Anthropic Messages API through the official ``anthropic`` client;
  ``base_url`` is the host (``https://api.anthropic.com``), the client appends ``/v1/messages``.

Structured output: with a ``schema`` the OpenAI call asks ``response_format={"type":
"json_schema", ...}`` (strict) and the Anthropic call forces one tool whose ``input_schema`` is the
schema. A schema that is not an object is wrapped as ``{"value": <schema>}`` on the wire (both
APIs want an object) and unwrapped in ``Answer.value``. ``temperature`` goes to OpenAI-compatible
endpoints only: the Anthropic client of this version no longer takes one. ``complete`` parses the JSON but does not
validate it against the schema: the caller does.

Errors are always ``LlmError``: 429 is retryable with the provider's Retry-After (except
OpenAI's ``insufficient_quota``, which waiting does not cure), 5xx, timeouts and connection
failures are retryable, other 4xx are not and carry the provider's message. Clients are cached
per (kind, base URL, key) with ``max_retries=0``: the row-run engine does the retrying.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from time import time
from typing import Any

import anthropic
import httpx
import openai

KINDS = ("openai", "anthropic")
SCHEMA_NAME = "answer"
WRAP_KEY = "value"
CLIENT_CACHE_MAX = 64
MESSAGE_MAX = 300


@dataclass(frozen=True)
class Endpoint:
    """Where and how to ask: the decrypted key is kept out of ``repr`` (and so out of logs)."""

    kind: str  # "openai" | "anthropic"
    base_url: str
    api_key: str = field(repr=False)
    model: str
    platform: bool  # True: the operator's default endpoint, charged in platform credits
    endpoint_id: int | None = None
    requests_per_minute: int | None = None  # the endpoint's own limits for runs (None: the defaults)
    tokens_per_minute: int | None = None


@dataclass(frozen=True)
class Answer:
    text: str  # the raw text the model returned (JSON text when a schema was asked)
    value: Any  # the parsed JSON when a schema was asked, else the text
    input_tokens: int
    output_tokens: int
    model: str


class LlmError(Exception):
    """A call that gave no answer. ``message`` is safe to show a user (never the key)."""

    def __init__(self, message: str, *, retryable: bool = False, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"LlmError({self.message!r}, retryable={self.retryable}, retry_after={self.retry_after})"


_clients: dict[tuple[str, str, str], Any] = {}
_clients_lock = threading.Lock()


def _client(endpoint: Endpoint) -> Any:
    key = (endpoint.kind, endpoint.base_url, endpoint.api_key)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if endpoint.kind == "openai":
                client = openai.OpenAI(api_key=endpoint.api_key, base_url=endpoint.base_url, max_retries=0)
            else:
                client = anthropic.Anthropic(api_key=endpoint.api_key, base_url=endpoint.base_url, max_retries=0)
            if len(_clients) >= CLIENT_CACHE_MAX:
                _clients.pop(next(iter(_clients)))  # the oldest; its connections close when collected
            _clients[key] = client
        return client


def _clean(text: str) -> str:
    """The text with lone surrogates replaced: they cannot be sent as UTF-8."""
    return text.encode("utf-8", "replace").decode("utf-8") if isinstance(text, str) else str(text)


def _wire_schema(schema: dict) -> tuple[dict, bool]:
    if schema.get("type") == "object":
        return schema, False
    wrapped = {
        "type": "object",
        "properties": {WRAP_KEY: schema},
        "required": [WRAP_KEY],
        "additionalProperties": False,
    }
    return wrapped, True


def _retry_after(headers: httpx.Headers | None) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time())
    except (TypeError, ValueError, IndexError):
        return None


def _provider_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    message = None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            message = inner.get("message")
    message = str(message or getattr(exc, "message", "") or type(exc).__name__)
    return message[:MESSAGE_MAX]


def _error_code(exc: Any) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code") or inner.get("type")
    return None


def _map_error(exc: Exception) -> LlmError:
    if isinstance(exc, openai.APITimeoutError | anthropic.APITimeoutError):
        return LlmError("The model did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError):
        return LlmError("Could not reach the model endpoint", retryable=True)
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        status = exc.status_code
        message = _provider_message(exc)
        if status == 429:
            if _error_code(exc) == "insufficient_quota":
                return LlmError(f"The model endpoint's quota is used up: {message}", retryable=False)
            return LlmError(
                f"The model endpoint is rate limiting: {message}",
                retryable=True,
                retry_after=_retry_after(exc.response.headers),
            )
        if status >= 500:
            return LlmError(f"The model endpoint failed ({status}): {message}", retryable=True)
        if status in (401, 403):
            return LlmError(f"The model endpoint refused the key ({status}): {message}", retryable=False)
        return LlmError(f"The model endpoint refused the request ({status}): {message}", retryable=False)
    return LlmError(f"The model call failed: {type(exc).__name__}", retryable=False)


def _parse(text: str, wrapped: bool) -> Any:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise LlmError("The model's answer was not valid JSON", retryable=False) from None
    if wrapped:
        if not isinstance(value, dict) or WRAP_KEY not in value:
            raise LlmError("The model's answer did not hold a value", retryable=False)
        return value[WRAP_KEY]
    return value


def _openai(endpoint, system, prompt, schema, temperature, max_tokens, timeout) -> Answer:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    kwargs: dict[str, Any] = {}
    wrapped = False
    if schema is not None:
        wire, wrapped = _wire_schema(schema)
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": SCHEMA_NAME, "schema": wire, "strict": True},
        }
    result = _client(endpoint).chat.completions.create(
        model=endpoint.model,
        messages=messages,
        temperature=temperature,
        max_completion_tokens=max_tokens,
        timeout=timeout,
        **kwargs,
    )
    if not result.choices:
        raise LlmError("The model endpoint gave no answer", retryable=True)
    message = result.choices[0].message
    if getattr(message, "refusal", None):
        raise LlmError(f"The model refused: {str(message.refusal)[:MESSAGE_MAX]}", retryable=False)
    text = message.content or ""
    usage = result.usage
    value = _parse(text, wrapped) if schema is not None else text
    return Answer(
        text=text,
        value=value,
        input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        model=result.model or endpoint.model,
    )


def _anthropic(endpoint, system, prompt, schema, temperature, max_tokens, timeout) -> Answer:
    kwargs: dict[str, Any] = {}
    wrapped = False
    if system:
        kwargs["system"] = system
    if schema is not None:
        wire, wrapped = _wire_schema(schema)
        kwargs["tools"] = [{"name": SCHEMA_NAME, "description": "Give the answer.", "input_schema": wire}]
        kwargs["tool_choice"] = {"type": "tool", "name": SCHEMA_NAME}
    result = _client(endpoint).messages.create(
        model=endpoint.model,
        max_tokens=max_tokens,
        messages=[{"role": "user", "content": prompt}],
        timeout=timeout,
        **kwargs,
    )
    texts, tool_input = [], None
    for block in result.content or []:
        if block.type == "tool_use" and tool_input is None:
            tool_input = block.input
        elif block.type == "text":
            texts.append(block.text)
    if schema is not None and tool_input is not None:
        text = json.dumps(tool_input)
        value = _parse(text, wrapped)
    else:
        text = "".join(texts)
        value = _parse(text, wrapped) if schema is not None else text
    usage = result.usage
    return Answer(
        text=text,
        value=value,
        input_tokens=int(getattr(usage, "input_tokens", 0) or 0),
        output_tokens=int(getattr(usage, "output_tokens", 0) or 0),
        model=result.model or endpoint.model,
    )


def complete(
    endpoint: Endpoint,
    *,
    system: str,
    prompt: str,
    schema: dict | None = None,
    temperature: float = 0.0,
    max_tokens: int = 512,
    timeout: float = 30.0,
) -> Answer:
    """Ask ``endpoint`` once; the parsed answer, or ``LlmError`` (never another exception)."""
    if endpoint.kind not in KINDS:
        raise LlmError(f"Unknown kind of model endpoint {endpoint.kind!r}", retryable=False)
    if schema is not None and not isinstance(schema, dict):
        raise LlmError("The answer's schema must be a JSON object", retryable=False)
    call = _openai if endpoint.kind == "openai" else _anthropic
    try:
        return call(endpoint, _clean(system or ""), _clean(prompt or ""), schema, temperature, max_tokens, timeout)
    except LlmError:
        raise
    except Exception as exc:  # one error type for every caller; the cause stays chained
        raise _map_error(exc) from exc


# --- tool use: one step of a conversation (the research agent) ----------------------------------


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: dict


@dataclass(frozen=True)
class Turn:
    """One model step: a tool call (``call``) or text, with the step's usage."""

    call: ToolCall | None
    text: str
    input_tokens: int
    output_tokens: int
    model: str


def _openai_messages(system: str, messages: list[dict]) -> list[dict]:
    wire: list[dict] = [{"role": "system", "content": system}] if system else []
    for m in messages:
        if m["role"] == "user":
            wire.append({"role": "user", "content": _clean(m["text"])})
        elif m["role"] == "assistant":
            call = m["call"]
            wire.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }]})  # fmt: skip
        else:
            wire.append({"role": "tool", "tool_call_id": m["id"], "content": _clean(m["text"])})
    return wire


def _anthropic_messages(messages: list[dict]) -> list[dict]:
    wire: list[dict] = []
    for m in messages:
        if m["role"] == "user":
            wire.append({"role": "user", "content": _clean(m["text"])})
        elif m["role"] == "assistant":
            call = m["call"]
            wire.append({"role": "assistant", "content": [
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
            ]})  # fmt: skip
        else:
            wire.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": m["id"], "content": _clean(m["text"])}
            ]})  # fmt: skip
    return wire


def _arguments(raw: Any) -> dict:
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw or "{}")
    except (TypeError, ValueError):
        raise LlmError("The model's tool call did not hold JSON arguments", retryable=False) from None
    if not isinstance(value, dict):
        raise LlmError("The model's tool call did not hold an object", retryable=False)
    return value


def _openai_turn(endpoint, system, messages, tools, max_tokens, timeout) -> Turn:
    result = _client(endpoint).chat.completions.create(
        model=endpoint.model,
        messages=_openai_messages(system, messages),
        tools=[{"type": "function", "function": t} for t in tools],
        tool_choice="required",
        temperature=0,
        max_completion_tokens=max_tokens,
        timeout=timeout,
    )
    if not result.choices:
        raise LlmError("The model endpoint gave no answer", retryable=True)
    message = result.choices[0].message
    calls = getattr(message, "tool_calls", None) or []
    call = None
    if calls:
        fn = calls[0].function
        call = ToolCall(str(calls[0].id), str(fn.name), _arguments(fn.arguments))
    usage = result.usage
    return Turn(call, message.content or "", int(getattr(usage, "prompt_tokens", 0) or 0),
                int(getattr(usage, "completion_tokens", 0) or 0), result.model or endpoint.model)  # fmt: skip


def _anthropic_turn(endpoint, system, messages, tools, max_tokens, timeout) -> Turn:
    kwargs: dict[str, Any] = {"system": system} if system else {}
    result = _client(endpoint).messages.create(
        model=endpoint.model,
        max_tokens=max_tokens,
        messages=_anthropic_messages(messages),
        tools=[{"name": t["name"], "description": t["description"], "input_schema": t["parameters"]} for t in tools],
        tool_choice={"type": "any"},
        timeout=timeout,
        **kwargs,
    )
    call, texts = None, []
    for block in result.content or []:
        if block.type == "tool_use" and call is None:
            call = ToolCall(str(block.id), str(block.name), _arguments(block.input))
        elif block.type == "text":
            texts.append(block.text)
    usage = result.usage
    return Turn(call, "".join(texts), int(getattr(usage, "input_tokens", 0) or 0),
                int(getattr(usage, "output_tokens", 0) or 0), result.model or endpoint.model)  # fmt: skip


def converse(
    endpoint: Endpoint, *, system: str, messages: list[dict], tools: list[dict], max_tokens: int = 512,
    timeout: float = 30.0,
) -> Turn:  # fmt: skip
    """One step of a tool-using conversation; the model must call one of ``tools``.

    ``messages``: ``{"role": "user", "text"}``, ``{"role": "assistant", "call": ToolCall}`` and
    ``{"role": "tool", "id", "text"}`` (a call's result), in order. ``tools``: ``{"name",
    "description", "parameters"}`` (a JSON schema). Errors as ``complete``'s.
    """
    if endpoint.kind not in KINDS:
        raise LlmError(f"Unknown kind of model endpoint {endpoint.kind!r}", retryable=False)
    call = _openai_turn if endpoint.kind == "openai" else _anthropic_turn
    try:
        return call(endpoint, _clean(system or ""), messages, tools, max_tokens, timeout)
    except LlmError:
        raise
    except Exception as exc:  # one error type for every caller; the cause stays chained
        raise _map_error(exc) from exc
