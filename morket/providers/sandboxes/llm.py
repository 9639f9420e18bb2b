"""A deterministic stand-in for language models: OpenAI chat completions and Anthropic Messages.

Served under ``/openai`` (``POST /openai/v1/chat/completions``, ``GET /openai/v1/models``; point
the ``openai`` client at ``<sandbox>/openai/v1``) and ``/anthropic`` (``POST
/anthropic/v1/messages``; point the ``anthropic`` client at ``<sandbox>/anthropic``). Keys start
``sandbox-`` or ``sk-test-`` (else 401). The shared knobs of every sandbox apply per prefix
(latency, every n-th request failing with ``fail_status``, token-bucket 429 with Retry-After,
quota: OpenAI answers 429 ``insufficient_quota``, Anthropic a 400 about the credit balance).

There is no model: the answer is a pure function of the request. Words used below:

- *prompt*: the text of every user message, joined with a newline (tool results excluded);
- *data*: the text between the first ``<data>`` and the next ``</data>`` in the prompt, else the
  whole prompt;
- *h*: ``int(sha256(prompt as UTF-8).hexdigest(), 16)``; *tag*: the first 8 hex digits of it.

Rules, tried in order by ``RULES`` (first one that answers wins; insert a rule with
``add_rule``):

1. ``[[not-json]]`` in the prompt: the answer is the plain text ``Sorry, I cannot answer that
   as JSON.`` even when a schema was asked (Anthropic: a text block instead of the tool call).
2. ``[[junk]]`` in the prompt with a schema: a JSON value that does not fit it: every property of
   an object gets a value of the wrong kind (enum → ``"not-an-option"``, number/integer →
   ``"not a number"``, boolean → ``"maybe"``, string → ``12345``, array/object → ``"junk"``).
3. Tools offered (and ``tool_choice`` not ``none``): when the conversation holds no tool result
   yet, call one tool: the forced one, else the first whose name appears (whole word) in the
   prompt, else the first; its arguments follow rule 4 on its parameters. Once a tool result is
   in the conversation, answer text by rule 5 with the last tool result's first line as data.
4. A JSON schema (OpenAI ``response_format`` json_schema, Anthropic ``output_config`` format or
   a forced tool): the value is built from the schema:
   - ``const`` → it; ``enum`` → the first option (in the enum's order) whose text appears in the
     data, case-insensitive, as a whole word; else ``options[h % n]``;
   - ``anyOf``/``oneOf`` → the first branch that is not ``null``; a type list → its first
     non-null type;
   - object → every property, in order, by these rules; array → ``max(1, minItems)`` items;
   - number → the first number in the data (``-?\\d+(\\.\\d+)?``; a whole one as an integer),
     else 0; integer → the integer part of it, else 0;
   - boolean → true when ``yes`` or ``true`` appears in the data as a whole word, else false;
   - string with ``format`` uri/url or a property named like url/website/link → the first
     ``http(s)://`` URL in the data, else ``https://example.com/<tag>``; with ``format`` email or
     a property named like email → the first email address in the data, else
     ``<tag>@example.com``; other strings → the data's first non-empty line (up to 80
     characters, and ``maxLength``), else ``sandbox-<tag>``.
   Requests whose schema's title is ``morket_view_filters`` (natural-language filters) are answered
   before this rule by ``llm_filters`` (its phrase grammar is documented there).
5. Plain text: ``Sandbox answer about "<first non-empty line of the data, up to 80
   characters>".``, or ``Sandbox answer: nothing to go on.`` when the data is empty.

Markers for failures of one request: ``[[fail:NNN]]`` in the prompt answers status NNN (400-599)
with the provider's error shape (429 with ``Retry-After: 1``).

Usage: ``input_tokens = ceil(len(system + every message's text) / 4)`` (characters, tool
definitions and schemas not counted) and ``output_tokens = ceil(len(answer) / 4)``, where the
answer is the content text, or a tool call's arguments as ``json.dumps`` writes them. An answer
longer than ``max_tokens * 4`` characters is cut there, with finish reason ``length`` /
``max_tokens``. ``"stream": true`` answers the same content as server-sent events in each API's
event shapes (the whole body at once: enough for the clients' stream parsers).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import llm_filters
from morket.providers.sandboxes.server import Call, ProviderSandbox, json_response

MODELS = ("sandbox-small", "sandbox-large")
FIRST_LINE_MAX = 80
NOT_JSON_TEXT = "Sorry, I cannot answer that as JSON."
_FAIL = re.compile(r"\[\[fail:(\d{3})\]\]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


@dataclass
class Ask:
    """One request, reduced to what the rules read."""

    model: str
    system: str
    prompt: str
    schema: dict | None = None
    tools: list[dict] = field(default_factory=list)  # [{name, description, parameters}]
    tool_choice: str | None = None  # None/"auto", "any", "none" or a tool's name
    tool_results: list[str] = field(default_factory=list)
    all_text: str = ""

    @property
    def data(self) -> str:
        start = self.prompt.find("<data>")
        if start >= 0:
            end = self.prompt.find("</data>", start + 6)
            return self.prompt[start + 6 : end if end >= 0 else len(self.prompt)]
        return self.prompt

    @property
    def h(self) -> int:
        return int(hashlib.sha256(self.prompt.encode("utf-8", "surrogatepass")).hexdigest(), 16)

    @property
    def tag(self) -> str:
        return f"{self.h:064x}"[:8]


@dataclass
class Reply:
    """Text, or one tool call (name and arguments)."""

    text: str | None = None
    tool: tuple[str, Any] | None = None


Rule = Callable[[Ask], Reply | None]


def whole_word(word: str, text: str) -> bool:
    word = str(word)
    if not word.strip():
        return False
    return re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", text, re.IGNORECASE) is not None


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:FIRST_LINE_MAX]
    return ""


def _non_null(types: Any) -> str | None:
    if isinstance(types, list):
        return next((t for t in types if t != "null"), None)
    return types


def fill(schema: Any, ask: Ask, name: str = "", depth: int = 0) -> Any:
    """The value rule 4 builds for ``schema`` (``name``: the property it is for)."""
    if not isinstance(schema, dict) or depth > 20:
        return _string({}, ask, name)
    if "const" in schema:
        return schema["const"]
    options = schema.get("enum")
    if isinstance(options, list) and options:
        data = ask.data
        for option in options:
            if option is not None and whole_word(str(option), data):
                return option
        return options[ask.h % len(options)]
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            chosen = next((b for b in branches if isinstance(b, dict) and b.get("type") != "null"), branches[0])
            return fill(chosen, ask, name, depth + 1)
    kind = _non_null(schema.get("type"))
    if kind is None and isinstance(schema.get("properties"), dict):
        kind = "object"
    if kind == "object":
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        return {key: fill(sub, ask, str(key), depth + 1) for key, sub in props.items()}
    if kind == "array":
        count = schema.get("minItems")
        count = max(1, min(count, 10)) if isinstance(count, int) else 1
        return [fill(schema.get("items", {}), ask, name, depth + 1) for _ in range(count)]
    if kind in ("number", "integer"):
        found = _NUMBER.search(ask.data)
        text = found.group() if found else "0"
        whole = int(text.split(".")[0])  # Python's int has no limit: a 400-digit number stays exact
        number = float(text) if kind == "number" and "." in text else None
        return number if number is not None and math.isfinite(number) and not number.is_integer() else whole
    if kind == "boolean":
        return whole_word("yes", ask.data) or whole_word("true", ask.data)
    if kind == "null":
        return None
    return _string(schema, ask, name)


def _string(schema: dict, ask: Ask, name: str) -> str:
    fmt = str(schema.get("format", "")).lower()
    lowered = name.lower()
    if fmt in ("uri", "url") or any(w in lowered for w in ("url", "website", "link")):
        found = _URL.search(ask.data)
        value = found.group().rstrip(".,;:!?") if found else f"https://example.com/{ask.tag}"
    elif fmt == "email" or "email" in lowered:
        found = _EMAIL.search(ask.data)
        value = found.group() if found else f"{ask.tag}@example.com"
    else:
        value = first_line(ask.data) or f"sandbox-{ask.tag}"
    limit = schema.get("maxLength")
    return value[:limit] if isinstance(limit, int) and limit > 0 else value


def junk(schema: Any) -> Any:
    """A value of the wrong kind for ``schema`` (rule 2)."""
    if not isinstance(schema, dict):
        return "junk"
    if "enum" in schema or "const" in schema:
        return "not-an-option"
    kind = _non_null(schema.get("type"))
    if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        return {key: junk(sub) for key, sub in props.items()} or {"junk": True}
    return {"number": "not a number", "integer": "not a number", "boolean": "maybe", "string": 12345}.get(
        kind or "string", "junk"
    )


# -- rules ------------------------------------------------------------------------------------


def rule_not_json(ask: Ask) -> Reply | None:
    return Reply(text=NOT_JSON_TEXT) if "[[not-json]]" in ask.prompt else None


def rule_junk(ask: Ask) -> Reply | None:
    if "[[junk]]" not in ask.prompt:
        return None
    if ask.schema is not None:
        return Reply(text=json.dumps(junk(ask.schema)))
    if ask.tools and ask.tool_choice != "none" and not ask.tool_results:
        tool = pick_tool(ask)
        return Reply(tool=(tool["name"], junk(tool.get("parameters"))))
    return None


def pick_tool(ask: Ask) -> dict:
    if ask.tool_choice not in (None, "auto", "any", "none"):
        named = next((t for t in ask.tools if t["name"] == ask.tool_choice), None)
        if named is not None:
            return named
    return next((t for t in ask.tools if whole_word(t["name"], ask.prompt)), ask.tools[0])


def rule_tools(ask: Ask) -> Reply | None:
    if not ask.tools or ask.tool_choice == "none":
        return None
    if ask.tool_results:
        line = first_line(ask.tool_results[-1])
        return Reply(text=f'Sandbox answer about "{line}".' if line else "Sandbox answer: nothing to go on.")
    tool = pick_tool(ask)
    arguments = fill(tool.get("parameters") or {"type": "object", "properties": {}}, ask)
    return Reply(tool=(tool["name"], arguments if isinstance(arguments, dict) else {"value": arguments}))


def rule_schema(ask: Ask) -> Reply | None:
    return Reply(text=json.dumps(fill(ask.schema, ask))) if ask.schema is not None else None


def rule_text(ask: Ask) -> Reply | None:
    line = first_line(ask.data)
    return Reply(text=f'Sandbox answer about "{line}".' if line else "Sandbox answer: nothing to go on.")


RULES: list[Rule] = [rule_not_json, rule_junk, rule_tools, rule_schema, rule_text]


def add_rule(rule: Rule, *, before: Rule | None = rule_tools) -> None:
    """Insert ``rule`` ahead of ``before`` (default: ahead of the tool, schema and text rules)."""
    RULES.insert(RULES.index(before) if before in RULES else len(RULES), rule)


def rule_filters(ask: Ask) -> Reply | None:
    """Natural-language filter requests (their schema's title says so): ``llm_filters.answer``."""
    if llm_filters.is_filter_schema(ask.schema):
        return Reply(text=json.dumps(llm_filters.answer(ask.schema, ask.data)))
    if ask.tools and ask.tool_choice != "none" and not ask.tool_results:
        tool = pick_tool(ask)
        if llm_filters.is_filter_schema(tool.get("parameters")):
            return Reply(tool=(tool["name"], llm_filters.answer(tool["parameters"], ask.data)))
    return None


add_rule(rule_filters)


def reply_to(ask: Ask) -> Reply:
    for rule in RULES:
        reply = rule(ask)
        if reply is not None:
            return reply
    return rule_text(ask)


def tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str) and part.get("type", "text") == "text":
                parts.append(part["text"])
        return "".join(parts)
    return ""


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param = message, param


def _body(request: Request) -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("you must provide a model parameter", "model")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise BadRequest("messages must be a non-empty list", "messages")
    return body


def _max_tokens(value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest("max_tokens must be a positive integer", "max_tokens")
    return value


def _cut(text: str, max_tokens: int | None) -> tuple[str, bool]:
    if max_tokens is not None and len(text) > max_tokens * 4:
        return text[: max_tokens * 4], True
    return text, False


def _sse(events: list[tuple[str | None, Any]]) -> Response:
    lines = []
    for event, data in events:
        if event:
            lines.append(f"event: {event}")
        lines.append("data: " + (data if isinstance(data, str) else json.dumps(data)))
        lines.append("")
    return Response("\n".join(lines) + "\n", mimetype="text/event-stream", headers={"Cache-Control": "no-cache"})


class _LlmSandbox(ProviderSandbox):
    """What both APIs share: the failure marker and the request log of prompts."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.asks: list[dict[str, Any]] = []

    def admin(self, action: str, request: Request) -> Response | None:
        if action == "asks" and request.method == "GET":
            with self.lock:
                return json_response(list(self.asks))
        return None

    def remember(self, ask: Ask) -> None:
        with self.lock:
            self.asks.append({"model": ask.model, "system": ask.system, "prompt": ask.prompt, "at": time.time()})
            del self.asks[:-1000]

    def marked_failure(self, ask: Ask) -> Response | None:
        found = _FAIL.search(ask.prompt)
        if not found:
            return None
        status = int(found.group(1))
        if status == 429:
            return self.error(429, "rate_limited", "Rate limit reached (sandbox marker)", {"Retry-After": "1"})
        if 400 <= status <= 599:
            return self.error(status, "marked_failure", f"Failure {status} asked for by the prompt (sandbox marker)")
        return None


class OpenAISandbox(_LlmSandbox):
    name = "openai"
    routes = {("POST", "/v1/chat/completions"): "chat_completions", ("GET", "/v1/models"): "models"}

    def key_of(self, request: Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        kinds = {
            401: "invalid_request_error",
            429: "rate_limit_error" if code != "usage_limit" else "insufficient_quota",
        }
        error_type = kinds.get(status, "server_error" if status >= 500 else "invalid_request_error")
        if status == 401:
            code = "invalid_api_key"
        if code == "usage_limit":
            code, message = "insufficient_quota", "You exceeded your current quota, please check your plan."
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        return json_response(body, status, headers)

    def handle(self, call: Call) -> Response:
        if call.operation == "models":
            data = [{"id": m, "object": "model", "created": 1767225600, "owned_by": "morket-sandbox"} for m in MODELS]
            return json_response({"object": "list", "data": data})
        try:
            return self._chat(call.request)
        except BadRequest as exc:
            body = {
                "error": {"message": exc.message, "type": "invalid_request_error", "param": exc.param, "code": None}
            }
            return json_response(body, 400)

    def _ask(self, body: dict) -> Ask:
        system, prompts, results, texts = [], [], [], []
        for message in body["messages"]:
            if not isinstance(message, dict) or message.get("role") not in (
                "system",
                "developer",
                "user",
                "assistant",
                "tool",
            ):
                raise BadRequest("each message needs a role of system, developer, user, assistant or tool", "messages")
            text = _text_of(message.get("content"))
            texts.append(text)
            role = message["role"]
            if role in ("system", "developer"):
                system.append(text)
            elif role == "user":
                prompts.append(text)
            elif role == "tool":
                results.append(text)
        schema = None
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict) or not spec.get("name"):
                raise BadRequest("response_format.json_schema needs a name and a schema", "response_format")
            schema = spec.get("schema", {})
        tools = []
        for tool in body.get("tools") or []:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise BadRequest("each tool needs a function with a name", "tools")
            tools.append(
                {"name": fn["name"], "description": fn.get("description", ""), "parameters": fn.get("parameters")}
            )
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            choice = (choice.get("function") or {}).get("name")
        elif choice == "required":
            choice = "any"
        ask = Ask(model=body["model"], system="\n".join(system), prompt="\n".join(prompts), schema=schema,
                  tools=tools, tool_choice=choice, tool_results=results)  # fmt: skip
        ask.all_text = "".join(texts)
        return ask

    def _chat(self, request: Request) -> Response:
        body = _body(request)
        ask = self._ask(body)
        max_tokens = _max_tokens(body.get("max_completion_tokens", body.get("max_tokens")), None)
        self.remember(ask)
        failure = self.marked_failure(ask)
        if failure is not None:
            return failure
        reply = reply_to(ask)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if reply.tool is not None:
            name, arguments = reply.tool
            answer = json.dumps(arguments)
            call_id = "call_" + hashlib.sha256((ask.prompt + name).encode("utf-8", "surrogatepass")).hexdigest()[:24]
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": answer}}
            ]
            finish = "tool_calls"
        else:
            answer, cut = _cut(reply.text or "", max_tokens)
            message["content"] = answer
            finish = "length" if cut else "stop"
        usage = {"prompt_tokens": tokens(ask.all_text), "completion_tokens": tokens(answer)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        ident, created = "chatcmpl-" + uuid.uuid4().hex[:24], int(time.time())
        if body.get("stream"):
            return self._stream(ident, created, ask.model, message, finish, usage, body.get("stream_options"))
        return json_response({
            "id": ident, "object": "chat.completion", "created": created, "model": ask.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": usage,
        })  # fmt: skip

    def _stream(self, ident, created, model, message, finish, usage, options) -> Response:
        def chunk(delta: dict, finish_reason: str | None) -> dict:
            return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}  # fmt: skip

        events: list[tuple[str | None, Any]] = [(None, chunk({"role": "assistant", "content": ""}, None))]
        if message.get("tool_calls"):
            tool = message["tool_calls"][0]
            start = {
                "index": 0,
                "id": tool["id"],
                "type": "function",
                "function": {"name": tool["function"]["name"], "arguments": ""},
            }
            events.append((None, chunk({"tool_calls": [start]}, None)))
            arguments = tool["function"]["arguments"]
            for i in range(0, len(arguments), 16):
                events.append(
                    (
                        None,
                        chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[i : i + 16]}}]}, None),
                    )
                )
        else:
            text = message["content"] or ""
            for i in range(0, len(text), 16):
                events.append((None, chunk({"content": text[i : i + 16]}, None)))
        events.append((None, chunk({}, finish)))
        if isinstance(options, dict) and options.get("include_usage"):
            events.append((None, {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                                  "choices": [], "usage": usage}))  # fmt: skip
        events.append((None, "[DONE]"))
        return _sse(events)


class AnthropicSandbox(_LlmSandbox):
    name = "anthropic"
    routes = {("POST", "/v1/messages"): "messages"}
    _types = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        529: "overloaded_error",
    }

    def key_of(self, request: Request) -> str | None:
        # ``x-api-key`` as the contract has it; the client of this version sends a bearer token.
        auth = request.headers.get("Authorization", "")
        return request.headers.get("x-api-key") or (auth[7:] if auth.startswith("Bearer ") else None)

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        error_type = self._types.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return json_response({"type": "error", "error": {"type": error_type, "message": message}}, status, headers)

    def quota_exceeded(self) -> Response:
        return self.error(400, "billing", "Your credit balance is too low to access the Anthropic API.")

    def handle(self, call: Call) -> Response:
        try:
            return self._messages(call.request)
        except BadRequest as exc:
            return self.error(400, "invalid_request", f"{exc.param + ': ' if exc.param else ''}{exc.message}")

    def _ask(self, body: dict) -> Ask:
        system_raw = body.get("system", "")
        system = _text_of(system_raw)
        prompts, results, texts = [], [], [system]
        for message in body["messages"]:
            if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
                raise BadRequest("each message needs a role of user or assistant", "messages")
            content = message.get("content")
            text = _text_of(content)
            texts.append(text)
            if isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "tool_result":
                        result = part.get("content")
                        result_text = _text_of(result)
                        results.append(result_text)
                        texts.append(result_text)
            if message["role"] == "user" and text:
                prompts.append(text)
        tools = []
        for tool in body.get("tools") or []:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise BadRequest("each tool needs a name", "tools")
            tools.append(
                {
                    "name": tool["name"],
                    "description": tool.get("description", ""),
                    "parameters": tool.get("input_schema"),
                }
            )
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            choice = choice.get("name") if choice.get("type") == "tool" else choice.get("type")
        schema = None
        output = body.get("output_config") or body.get("output_format")
        if isinstance(output, dict):
            fmt = output.get("format", output)
            if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
                schema = fmt["schema"]
        ask = Ask(model=body["model"], system=system, prompt="\n".join(prompts), schema=schema, tools=tools,
                  tool_choice=choice, tool_results=results)  # fmt: skip
        ask.all_text = "".join(texts)
        return ask

    def _messages(self, request: Request) -> Response:
        body = _body(request)
        max_tokens = _max_tokens(body.get("max_tokens"), None)
        if max_tokens is None:
            raise BadRequest("Field required", "max_tokens")
        ask = self._ask(body)
        self.remember(ask)
        failure = self.marked_failure(ask)
        if failure is not None:
            return failure
        reply = reply_to(ask)
        ident = "msg_" + uuid.uuid4().hex[:24]
        if reply.tool is not None:
            name, arguments = reply.tool
            answer = json.dumps(arguments)
            tool_id = "toolu_" + hashlib.sha256((ask.prompt + name).encode("utf-8", "surrogatepass")).hexdigest()[:24]
            content = [{"type": "tool_use", "id": tool_id, "name": name, "input": arguments}]
            stop = "tool_use"
        else:
            answer, cut = _cut(reply.text or "", max_tokens)
            content = [{"type": "text", "text": answer}]
            stop = "max_tokens" if cut else "end_turn"
        usage = {"input_tokens": tokens(ask.all_text), "output_tokens": tokens(answer)}
        message = {"id": ident, "type": "message", "role": "assistant", "model": ask.model, "content": content,
                   "stop_reason": stop, "stop_sequence": None, "usage": usage}  # fmt: skip
        if body.get("stream"):
            return self._stream(message, answer)
        return json_response(message)

    def _stream(self, message: dict, answer: str) -> Response:
        start = {**message, "content": [], "stop_reason": None,
                 "usage": {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}}  # fmt: skip
        events: list[tuple[str | None, Any]] = [("message_start", {"type": "message_start", "message": start})]
        block = message["content"][0]
        if block["type"] == "tool_use":
            opening = {**block, "input": {}}
            delta_type, key = "input_json_delta", "partial_json"
        else:
            opening = {"type": "text", "text": ""}
            delta_type, key = "text_delta", "text"
        events.append(("content_block_start", {"type": "content_block_start", "index": 0, "content_block": opening}))
        for i in range(0, len(answer), 16):
            delta = {"type": delta_type, key: answer[i : i + 16]}
            events.append(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": 0}))
        events.append(("message_delta", {"type": "message_delta",
                                         "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                                         "usage": {"output_tokens": message["usage"]["output_tokens"]}}))  # fmt: skip
        events.append(("message_stop", {"type": "message_stop"}))
        return _sse(events)
