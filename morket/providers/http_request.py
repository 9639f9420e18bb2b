"""Generic HTTP API: call any JSON API the user describes, one request per row.

The step's options say what to send and what to keep::

    {"method": "GET", "url": "https://api.example.com/v1/companies?domain={{domain}}",
     "headers": {"Authorization": "Bearer abc"}, "body": "{\"name\": \"{{name}}\"}",
     "outputs": {"industry": "$.company.industry", "size": "$.company.metrics.employees"}}

``{{name}}`` in the URL, headers and body is replaced by that input of the row: URL-encoded in
the URL, JSON-escaped in a JSON body, with line breaks removed in headers. ``{{api_key}}`` in a
header is the workspace's stored HTTP API key, so a secret never sits in the column's setup. Outputs are
JSONPath expressions (jsonpath-ng) over the JSON answer: one match gives its value, several a
list; with no outputs the whole answer is kept as ``response``.

Safety: the rendered URL must pass ``morket.core.urlsafety.check_url`` (http/https only, no
private, loopback, link-local or metadata addresses, except host:port pairs in the
SCRAPE_ALLOWLIST setting), and the request goes to the address that check resolved, so a name
cannot resolve to a public address for the check and a private one for the request. Redirects
are not followed (a redirect could point inside the network) and answers above
``MAX_RESPONSE_BYTES`` are refused. Header values are treated as secrets: they never appear in
a message.

Classification: 2xx -> ``hit`` when at least one output has a value, else ``not_found``;
404 -> ``not_found``; 400/422 -> ``invalid_input``; 401/403 -> ``auth_error``; 429 ->
``rate_limited`` (Retry-After); 5xx, timeouts, connection errors -> ``retryable``; a refused URL
or bad options -> ``invalid_input``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as jsonpath_parse

from morket.providers import _http
from morket.providers.base import CallContext, FieldSpec, Operation, Provider, Result
from morket.providers.registry import register

NAME = "http"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_RESPONSE_BYTES = 2 * 1024 * 1024
MAX_OUTPUTS = 30
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")
FORBIDDEN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
# In a header, the workspace's stored HTTP API key (Settings → Provider keys), never a row's value.
KEY_PLACEHOLDER = "api_key"

REQUEST = Operation(
    key="http.request",
    provider=NAME,
    label="HTTP API: call any JSON API",
    # The inputs are the {{names}} the step's templates use (see ``template_inputs``).
    inputs=(),
    outputs=(FieldSpec("response", "Whole response", "json"),),
)


class OptionsError(ValueError):
    """The step's options cannot make a request; the message says which one and why."""


def template_inputs(options: Mapping[str, Any]) -> list[str]:
    """The input names the URL, header and body templates refer to, in order of appearance.

    ``{{api_key}}`` is no row input: it is the workspace's stored HTTP API key (``uses_key``).
    """
    texts = [str(options.get("url") or ""), str(options.get("body") or "")]
    texts += [str(v) for v in (options.get("headers") or {}).values()]
    names = (m.group(1) for t in texts for m in PLACEHOLDER.finditer(t))
    return list(dict.fromkeys(n for n in names if n != KEY_PLACEHOLDER))


def uses_key(options: Mapping[str, Any]) -> bool:
    """Whether a header of the step sends the workspace's stored HTTP API key (``{{api_key}}``)."""
    return any(
        m.group(1) == KEY_PLACEHOLDER
        for v in (options.get("headers") or {}).values()
        for m in PLACEHOLDER.finditer(str(v))
    )


def output_names(options: Mapping[str, Any]) -> list[str]:
    """The fields this step delivers: the keys of ``outputs``, or ``response``."""
    return list(options.get("outputs") or {}) or ["response"]


def _check_placeholders(where: str, text: str, *, closing: bool = True) -> None:
    """``OptionsError`` for a ``{{`` (or ``}}``) that opens no placeholder: it would be sent as it is.

    A body checks only ``{{``, since JSON closes nested objects with ``}}``.
    """
    rest = PLACEHOLDER.sub("", text)
    stray = re.search(r"\{\{[^{}]{0,40}(\}\})?", rest) or (re.search(r"[^{}]{0,40}\}\}", rest) if closing else None)
    if stray:
        raise OptionsError(
            f"{where}: “{stray.group(0).strip()}” is not a placeholder; write {{{{name}}}} with letters, digits and "
            "underscores (no spaces), as the column picker inserts it"
        )


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Normalised options, or ``OptionsError`` naming the first problem (for the setup form too)."""
    method = str(options.get("method") or "GET").upper()
    if method not in METHODS:
        raise OptionsError(f"method must be one of {', '.join(METHODS)}")
    url = str(options.get("url") or "").strip()
    if not url:
        raise OptionsError("url is required")
    _check_placeholders("URL", url)
    scheme = urlsplit(PLACEHOLDER.sub("x", url)).scheme.lower()
    if scheme not in ("http", "https"):
        raise OptionsError("url must start with http:// or https://")
    headers = options.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(isinstance(v, str | int | float) for v in headers.values()):
        raise OptionsError("headers must map names to text values")
    for name, value in headers.items():
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", str(name)) or str(name).lower() in FORBIDDEN_HEADERS:
            raise OptionsError(f"header {name!r} cannot be set")
        _check_placeholders(f"header {name}", str(value))
    body = options.get("body")
    if body is not None and not isinstance(body, str):
        body = json.dumps(body)
    if body is not None:
        _check_placeholders("body", body, closing=False)
    outputs = options.get("outputs") or {}
    if not isinstance(outputs, Mapping) or len(outputs) > MAX_OUTPUTS:
        raise OptionsError(f"outputs must map up to {MAX_OUTPUTS} field names to JSONPath expressions")
    compiled = {}
    for field, path in outputs.items():
        if not FIELD_NAME.match(str(field)):
            raise OptionsError(f"output name {field!r} must be letters, digits and underscores")
        try:
            compiled[str(field)] = jsonpath_parse(str(path))
        except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # the parser raises bare Exception
            raise OptionsError(f"output {field!r}: {str(path)!r} is not a valid JSONPath expression") from exc
    return {
        "method": method,
        "url": url,
        "headers": {str(k): str(v) for k, v in headers.items()},
        "body": body,
        "outputs": compiled,
    }


def _value(inputs: Mapping[str, Any], name: str) -> str:
    value = inputs.get(name)
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)


def render_url(template: str, inputs: Mapping[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: quote(_value(inputs, m.group(1)), safe=""), template)


def render_body(template: str, inputs: Mapping[str, Any], as_json: bool) -> str:
    if as_json:
        # Inside a JSON string: escape exactly as JSON would, without the surrounding quotes.
        return PLACEHOLDER.sub(lambda m: json.dumps(_value(inputs, m.group(1)))[1:-1], template)
    return PLACEHOLDER.sub(lambda m: _value(inputs, m.group(1)), template)


def render_header(template: str, inputs: Mapping[str, Any]) -> str:
    return PLACEHOLDER.sub(lambda m: re.sub(r"[\r\n]+", " ", _value(inputs, m.group(1))), template)


def _allowlist() -> list[str]:
    # A run calls from its pool threads, which have no app context: read the app's settings all the same.
    from morket.scraping import app_for_threads

    try:
        app = app_for_threads()
    except RuntimeError:
        return []
    return list(app.config["MORKET"].get("SCRAPE_ALLOWLIST") or [])


def _pinned(url: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL to connect to (its host replaced by the checked address), Host header, TLS name."""
    from morket.core.urlsafety import check_url

    addresses = check_url(url, allowlist=_allowlist())
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not addresses:
        return url, {}, {}
    ip = addresses[0]
    try:
        if ipaddress.ip_address(host) == ip:
            return url, {}, {}
    except ValueError:
        pass
    literal = f"[{ip}]" if ip.version == 6 else str(ip)
    netloc = literal + (f":{parts.port}" if parts.port else "")
    if parts.username or parts.password:
        raise OptionsError("credentials in the URL are not allowed; use a header")
    pinned = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    host_header = host + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return pinned, {"Host": host_header}, extensions


def extract(outputs: Mapping[str, Any], document: Any) -> dict[str, Any]:
    """Each output's JSONPath matches in ``document``: one value, a list of several, or None."""
    values: dict[str, Any] = {}
    for field, expression in outputs.items():
        matches = [m.value for m in expression.find(document)]
        values[field] = None if not matches else matches[0] if len(matches) == 1 else matches
    return values


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


class HttpProvider(Provider):
    """A user-described JSON API call, checked against SSRF before it leaves."""

    def call(
        self, op: Operation, inputs: Mapping[str, Any], ctx: CallContext, options: Mapping[str, Any] | None = None
    ) -> Result:
        """Render the templates with the row's inputs, send, and extract the outputs."""
        try:
            opts = check_options(options or {})
        except OptionsError as exc:
            return Result("invalid_input", message=f"HTTP step: {exc}")
        values = {**inputs, KEY_PLACEHOLDER: ctx.api_key or ""}
        headers = {name: render_header(value, values) for name, value in opts["headers"].items()}
        secrets = tuple(v for v in (*headers.values(), ctx.api_key or "") if len(v) >= 6)
        url = render_url(opts["url"], inputs)
        from morket.core.urlsafety import UnsafeUrl

        try:
            target, pin_headers, extensions = _pinned(url)
        except (UnsafeUrl, OptionsError) as exc:
            return Result("invalid_input", message=_http.redact(str(exc), *secrets))
        content = None
        if opts["body"] is not None and opts["method"] != "GET":
            content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
            as_json = "json" in content_type.lower() or opts["body"].lstrip().startswith(("{", "["))
            content = render_body(opts["body"], inputs, as_json).encode()
            if as_json and not content_type:
                headers["Content-Type"] = "application/json"
        headers.setdefault("Accept", "application/json")
        return self._send(ctx, opts, target, {**headers, **pin_headers}, content, extensions, secrets)

    def _send(
        self,
        ctx: CallContext,
        opts: dict[str, Any],
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        extensions: dict[str, Any],
        secrets: tuple[str, ...],
    ) -> Result:
        try:
            request = ctx.client.build_request(
                opts["method"], url, headers=headers, content=content, timeout=ctx.timeout, extensions=extensions
            )
            response = ctx.client.send(request, stream=True, follow_redirects=False)
        except httpx.TimeoutException:
            return Result("retryable", message=f"the API did not answer within {ctx.timeout:g}s")
        except httpx.TransportError as exc:
            return Result("retryable", message=f"could not reach the API ({type(exc).__name__})")
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    return Result("invalid_input", http_status=response.status_code, message="the answer is too large")
        except httpx.TimeoutException:
            return Result("retryable", message=f"the API did not answer within {ctx.timeout:g}s")
        except httpx.TransportError as exc:
            return Result("retryable", message=f"the answer was cut off ({type(exc).__name__})")
        finally:
            response.close()
        status = response.status_code
        if 300 <= status < 400:
            return Result(
                "invalid_input", http_status=status, message=f"the API redirected (HTTP {status}); not followed"
            )
        if not 200 <= status < 300:
            snippet = bytes(body[:120]).decode("utf-8", "replace")
            return _http.classify_error(response, f"the API answered HTTP {status}: {snippet}", secrets=secrets)
        try:
            document = json.loads(body) if body else None
        except ValueError:
            return Result("invalid_input", http_status=status, message="the API did not answer with JSON")
        values = extract(opts["outputs"], document) if opts["outputs"] else {"response": document}
        if all(_empty(v) for v in values.values()):
            return Result("not_found", http_status=status, message="the answer had none of the outputs")
        return Result("hit", values=values, http_status=status)


PROVIDER = register(
    HttpProvider(
        name=NAME,
        label="HTTP API",
        operations=(REQUEST,),
        default_base_url="",
        default_rate=10.0,
        requires_key=False,
    )
)
