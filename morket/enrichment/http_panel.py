"""The HTTP-request and website-scrape cards written in the drawer: their first-row preview, a test request, saving.

The request preview renders the step's templates with the first row's cells exactly as the run will
(``http_request.render_url``, ``render_header``, ``render_body``) and masks secrets. "Send test request"
calls the HTTP provider itself, so it goes through the run's SSRF guard (``urlsafety.check_url`` and the
pinned address) and is refused with the guard's message. A header value that is a credential is stored
as the workspace's HTTP API key (``credentials``, encrypted) and the column keeps ``{{api_key}}`` in its
place: the secret is never written into the column's setup nor shown back. The scrape preview queues a
scrape of the first row's site through the scraping service, as its own page does. Services take the
workspace and actor, flush and never commit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from morket.core.errors import Conflict, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.enrichment import mapping, panel_forms, panel_service
from morket.enrichment.forms import http_options
from morket.providers import http_request
from morket.providers.base import CallContext
from morket.tables.models import Table

TEST_TIMEOUT_SECONDS = 10.0
KEY_PROVIDER = "http"
# How much of a test answer's body the drawer shows (characters, after decoding).
EXCERPT_CHARS = 600


@dataclass
class RequestPreview:
    """The request the run would send for the first row (secrets masked), and what made it."""

    method: str
    url: str
    headers: list[tuple[str, str]]
    body: str
    inputs: dict[str, Any]
    has_row: bool
    error: str | None = None


@dataclass
class TestAnswer:
    """What "Send test request" got: the outcome, HTTP status, latency and the extracted value."""

    outcome: str
    status: int | None
    latency_ms: int | None
    value: Any = None
    message: str | None = None
    refused: bool = False
    values: dict[str, Any] = field(default_factory=dict)
    # The first characters of the answer's body as it came (secrets masked), and whether there was more.
    excerpt: str | None = None
    truncated: bool = False
    # No field is named yet: the value is the whole answer, which the excerpt already shows.
    whole: bool = False


class _Recorder(httpx.BaseTransport):
    """The test client's transport: passes the answer on as read, keeping its first bytes for the excerpt."""

    def __init__(self) -> None:
        self._inner = httpx.HTTPTransport()
        self.head = bytearray()
        self.more = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        inner, keep = response.stream, EXCERPT_CHARS * 4  # enough bytes for the characters in any UTF-8

        recorder = self

        class _Tee(httpx.SyncByteStream):
            def __iter__(self):
                for chunk in inner:  # type: ignore[union-attr]
                    room = keep - len(recorder.head)
                    recorder.head.extend(chunk[: max(room, 0)])
                    recorder.more = recorder.more or len(chunk) > room
                    yield chunk

            def close(self) -> None:
                inner.close()  # type: ignore[union-attr]

        response.stream = _Tee()
        return response

    def close(self) -> None:
        self._inner.close()


def _excerpt(recorder: _Recorder, secrets: tuple[str | None, ...]) -> tuple[str | None, bool]:
    text = bytes(recorder.head).decode("utf-8", "replace")
    more = recorder.more or len(text) > EXCERPT_CHARS
    text = text[:EXCERPT_CHARS]
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "••••")
    return (text or None), more


def stored_key_hint(workspace: Workspace) -> str | None:
    """The masked hint of the workspace's stored HTTP API key ("1a2b"), "" for a short one, None without one."""
    from morket.credentials.service import list_credentials

    found = next((c for c in list_credentials(workspace) if c.provider == KEY_PROVIDER), None)
    return found.hint if found is not None else None


def first_row_inputs(
    workspace: Workspace, actor: Actor, table: Table, values: Mapping[str, str], *, row: Mapping[int, Any] | None = None
) -> dict[str, Any]:
    """The step's ``{{name}}`` inputs for the first row (or ``row``'s cells), from the columns ``in_<name>`` maps."""
    if row is None:
        sample = panel_service.sample_table(workspace, actor, table, limit=1)
        row = sample.rows[0][1] if sample.rows else {}
    inputs: dict[str, Any] = {}
    for name in http_request.template_inputs(http_options(values, 1)):
        column_raw, _, derivation = (values.get(f"in_{name}") or "").partition(":")
        if column_raw.isdigit():
            from morket.enrichment.waterfall import cell_input

            value = cell_input(row.get(int(column_raw)))
            inputs[name] = mapping.derive_input(derivation or None, value) if value not in (None, "") else None
    return inputs


def preview(
    workspace: Workspace, actor: Actor, table: Table, form: Mapping[str, str], *, row: Mapping[int, Any] | None = None
) -> RequestPreview:
    """The first row's (or ``row``'s) request as the run sends it: exact URL and body, headers with secrets masked."""
    values = panel_forms.http_values(form)
    options = http_options(values, 1)
    inputs = first_row_inputs(workspace, actor, table, values, row=row)
    has_row = row is not None or table.row_count > 0
    try:
        opts = http_request.check_options(options) if options["url"] else None
    except http_request.OptionsError as exc:
        return RequestPreview(options["method"], "", [], "", inputs, has_row, error=f"{exc}.")
    if opts is None:
        return RequestPreview(options["method"], "", [], "", inputs, has_row)
    hint = stored_key_hint(workspace)
    headers = [(n, http_request.render_header(v, inputs)) for n, v in panel_forms.masked_headers(form, hint)]
    body = ""
    if opts["body"] is not None and opts["method"] != "GET":
        body = http_request.render_body(opts["body"], inputs, opts["body"].lstrip().startswith(("{", "[")))
    url = http_request.render_url(opts["url"], inputs)
    return RequestPreview(opts["method"], url, headers, body, inputs, has_row)


def _typed_secret(form: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """Secret header values typed in the form: ({header: template}, the secret); at most one."""
    templates: dict[str, str] = {}
    secret = None
    for name, value in panel_forms.header_rows(form):
        if name.strip() and panel_forms.looks_secret(name, value):
            if secret is not None:
                raise ValidationFailed(
                    "Only one header can carry a secret: the workspace keeps one HTTP API key.",
                    fields={"headers": ["one secret"]},
                )
            templates[name.strip()], secret = panel_forms.split_secret(value)
    return templates, secret


def send_test(workspace: Workspace, actor: Actor, table: Table, form: Mapping[str, str]) -> TestAnswer:
    """Send the first row's request through the HTTP provider (the run's SSRF guard) and report what came back."""
    templates, typed = _typed_secret(form)
    values = panel_forms.http_values(form, key_template=templates)
    options = http_options(values, 1)
    if not options["url"]:
        raise ValidationFailed("Write the URL to call first.", fields={"http_url_1": ["required"]})
    key = typed
    if key is None and http_request.uses_key(options):
        from morket.credentials.service import resolve_key

        key, _source = resolve_key(workspace.id, KEY_PROVIDER, actor_id=getattr(actor, "id", None))
    inputs = first_row_inputs(workspace, actor, table, values)
    recorder = _Recorder()
    with httpx.Client(timeout=TEST_TIMEOUT_SECONDS, trust_env=False, transport=recorder) as client:
        ctx = CallContext(client=client, api_key=key, base_url="", timeout=TEST_TIMEOUT_SECONDS)
        started = time.perf_counter()
        result = http_request.PROVIDER.call(http_request.REQUEST, inputs, ctx, options)
        latency = int((time.perf_counter() - started) * 1000)
    field_name = (form.get("out_field") or "").strip()
    refused = result.outcome == "invalid_input" and result.http_status is None
    typed_secrets = (v for n, v in panel_forms.header_rows(form) if panel_forms.looks_secret(n, v))
    excerpt, more = _excerpt(recorder, (key, *typed_secrets))
    return TestAnswer(
        outcome=result.outcome,
        status=result.http_status,
        latency_ms=None if refused else latency,
        value=result.values.get(field_name) if field_name else result.values.get("response"),
        message=result.message,
        refused=refused,
        values=dict(result.values),
        excerpt=None if refused else excerpt,
        truncated=more,
        whole=not field_name,
    )


def store_secret_headers(workspace: Workspace, actor: Actor, form: Mapping[str, str]) -> dict[str, str]:
    """Store a secret header value as the workspace's HTTP API key; return {header: its ``{{api_key}}`` template}."""
    templates, secret = _typed_secret(form)
    if secret is None:
        return {}
    from morket.credentials.service import create_credential

    hint = stored_key_hint(workspace)
    if hint is not None:
        raise Conflict(
            f"This workspace already keeps an HTTP API key (••••{hint}): write {{{{api_key}}}} in the header "
            "to send it, or replace it in Settings → Provider keys."
        )
    header = next(iter(templates))
    create_credential(workspace, actor, KEY_PROVIDER, secret, label=f"Header {header}"[:120])
    return templates
