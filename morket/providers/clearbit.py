"""Clearbit Enrichment API v2: person, company and combined (person + company) lookups.

The published contract this adapter follows:

- Hosts and paths: ``GET https://person.clearbit.com/v2/people/find?email=``,
  ``GET https://company.clearbit.com/v2/companies/find?domain=`` and
  ``GET https://person.clearbit.com/v2/combined/find?email=``. When ``MORKET_CLEARBIT_URL`` is set,
  all three paths go under that one base URL instead.
- Authentication: ``Authorization: Bearer <key>`` (the key never goes into the URL).
- Errors: ``{"error": {"type", "message"}}``; 401 (and 403) -> ``auth_error``; 404
  ``unknown_record`` -> ``not_found``; 400 and 422 (``invalid_email``, ``invalid_domain``) ->
  ``invalid_input``; 429 -> ``rate_limited`` (Retry-After, else X-RateLimit-Reset); 5xx and
  timeouts -> ``retryable``.
- Asynchronous lookups: a record Clearbit has not looked up recently answers ``202 Accepted``
  (queued). When the call context has a ``callback_url`` we pass it as ``webhook_url`` with our
  own ``webhook_id``; a 202 then becomes ``pending`` with that id as ``callback_id``, and Clearbit
  later POSTs ``{"id", "type", "status", "body"}`` to the webhook, signed with
  ``X-Request-Signature: sha1=<hex HMAC-SHA1 of the raw body, keyed with the API key>``.
  ``verify_signature`` checks that header and ``result_from_webhook`` turns the payload into the
  same ``Result`` a direct answer would give. A 202 with no webhook is ``retryable`` (ask again).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any

import httpx

from morket.core.domains import registrable_domain
from morket.providers import _http
from morket.providers.base import CallContext, FieldSpec, InputSpec, Operation, Provider, Result
from morket.providers.registry import register

NAME = "clearbit"
DEFAULT_BASE_URL = "https://person.clearbit.com"
REAL_URLS = {
    "clearbit.person": "https://person.clearbit.com/v2/people/find",
    "clearbit.company": "https://company.clearbit.com/v2/companies/find",
    "clearbit.combined": "https://person.clearbit.com/v2/combined/find",
}
PATHS = {
    "clearbit.person": "/v2/people/find",
    "clearbit.company": "/v2/companies/find",
    "clearbit.combined": "/v2/combined/find",
}
# The webhook's "type" for each operation.
WEBHOOK_TYPES = {"person": "clearbit.person", "company": "clearbit.company", "person_company": "clearbit.combined"}
QUEUED_RETRY_AFTER = 60.0

PERSON = Operation(
    key="clearbit.person",
    provider=NAME,
    label="Clearbit: find a person by email",
    inputs=(InputSpec("email", "Email", kind="email"),),
    outputs=(
        FieldSpec("name", "Name"),
        FieldSpec("title", "Title"),
        FieldSpec("company", "Company"),
        FieldSpec("location", "Location"),
        FieldSpec("linkedin", "LinkedIn", "url"),
        FieldSpec("twitter", "Twitter"),
    ),
    asynchronous=True,
)
COMPANY = Operation(
    key="clearbit.company",
    provider=NAME,
    label="Clearbit: find a company by domain",
    inputs=(InputSpec("domain", "Company domain", kind="domain"),),
    outputs=(
        FieldSpec("name", "Company name"),
        FieldSpec("industry", "Industry"),
        FieldSpec("employees", "Employees", "number"),
        FieldSpec("description", "Description"),
        FieldSpec("location", "Location"),
        FieldSpec("linkedin", "LinkedIn", "url"),
        FieldSpec("twitter", "Twitter"),
    ),
)
COMBINED = Operation(
    key="clearbit.combined",
    provider=NAME,
    label="Clearbit: find a person and their company by email",
    inputs=(InputSpec("email", "Email", kind="email"),),
    outputs=(
        FieldSpec("name", "Name"),
        FieldSpec("title", "Title"),
        FieldSpec("company", "Company"),
        FieldSpec("company_domain", "Company domain", "url"),
        FieldSpec("industry", "Industry"),
        FieldSpec("employees", "Employees", "number"),
        FieldSpec("location", "Location"),
    ),
    asynchronous=True,
)


def sign(api_key: str, body: bytes) -> str:
    """The ``X-Request-Signature`` Clearbit sends with a webhook for ``body``."""
    return "sha1=" + hmac.new(api_key.encode(), body, hashlib.sha1).hexdigest()


def verify_signature(api_key: str | None, body: bytes, header: str | None) -> bool:
    """True when ``header`` is Clearbit's signature of the raw ``body`` with ``api_key``."""
    if not api_key or not header:
        return False
    return hmac.compare_digest(sign(api_key, body), header.strip())


def _handle(value: Any, prefix: str = "") -> str | None:
    handle = _http.text(value.get("handle")) if isinstance(value, dict) else None
    return f"{prefix}{handle}" if handle and prefix else handle


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def person_values(person: Any) -> dict[str, Any] | None:
    """The person operation's fields from Clearbit's person object."""
    if not isinstance(person, dict) or not person:
        return None
    employment = _dict(person.get("employment"))
    return {
        "name": _http.text(_dict(person.get("name")).get("fullName")),
        "title": _http.text(employment.get("title")),
        "company": _http.text(employment.get("name")),
        "location": _http.text(person.get("location")),
        "linkedin": _handle(person.get("linkedin"), "https://www.linkedin.com/"),
        "twitter": _handle(person.get("twitter")),
    }


def company_values(company: Any) -> dict[str, Any] | None:
    """The company operation's fields from Clearbit's company object."""
    if not isinstance(company, dict) or not company:
        return None
    return {
        "name": _http.text(company.get("name")),
        "industry": _http.text(_dict(company.get("category")).get("industry")),
        "employees": _http.as_int(_dict(company.get("metrics")).get("employees")),
        "description": _http.text(company.get("description")),
        "location": _http.text(company.get("location")),
        "linkedin": _handle(company.get("linkedin"), "https://www.linkedin.com/"),
        "twitter": _handle(company.get("twitter")),
    }


def combined_values(body: Any) -> dict[str, Any] | None:
    """The combined operation's fields from ``{"person": ..., "company": ...}``."""
    body = _dict(body)
    person, company = _dict(body.get("person")), _dict(body.get("company"))
    if not person and not company:
        return None
    employment = _dict(person.get("employment"))
    return {
        "name": _http.text(_dict(person.get("name")).get("fullName")),
        "title": _http.text(employment.get("title")),
        "company": _http.text(employment.get("name") or company.get("name")),
        "company_domain": _http.text(company.get("domain") or employment.get("domain")),
        "industry": _http.text(_dict(company.get("category")).get("industry")),
        "employees": _http.as_int(_dict(company.get("metrics")).get("employees")),
        "location": _http.text(person.get("location") or company.get("location")),
    }


VALUES = {"clearbit.person": person_values, "clearbit.company": company_values, "clearbit.combined": combined_values}


def _error_message(body: Any, status: int) -> str:
    error = _dict(body).get("error")
    if isinstance(error, dict) and (error.get("message") or error.get("type")):
        return f"Clearbit: {error.get('message') or error.get('type')}"
    return f"Clearbit answered HTTP {status}"


def result_from_webhook(payload: Mapping[str, Any]) -> tuple[str | None, Result]:
    """(our webhook id, the Result) from a webhook payload ``{"id", "type", "status", "body"}``."""
    callback_id = _http.text(payload.get("id"))
    op_key = WEBHOOK_TYPES.get(str(payload.get("type")))
    status = _http.as_int(payload.get("status"))
    if op_key is None:
        return callback_id, Result("retryable", http_status=status, message="Clearbit sent an unknown webhook type")
    if status == 200:
        values = VALUES[op_key](payload.get("body"))
        if values is not None:
            return callback_id, Result("hit", values=values, http_status=200)
        return callback_id, Result("not_found", http_status=200, message="Clearbit found no data")
    if status == 404:
        return callback_id, Result("not_found", http_status=404, message="Clearbit: unknown record")
    if status in (400, 422):
        return callback_id, Result("invalid_input", http_status=status, message="Clearbit refused the input")
    return callback_id, Result("retryable", http_status=status, message=f"Clearbit's webhook reported {status}")


class ClearbitProvider(Provider):
    """Clearbit's lookups, Bearer-authenticated, with the asynchronous webhook flow."""

    def url(self, op: Operation, ctx: CallContext) -> str:
        """The real per-API host, or the one configured base URL for every path."""
        if ctx.base_url.rstrip("/") == DEFAULT_BASE_URL:
            return REAL_URLS[op.key]
        return ctx.base_url.rstrip("/") + PATHS[op.key]

    def call(
        self, op: Operation, inputs: Mapping[str, Any], ctx: CallContext, options: Mapping[str, Any] | None = None
    ) -> Result:
        """Call ``op`` once; with a callback URL an asynchronous lookup may come back ``pending``."""
        if not ctx.api_key:
            return Result("auth_error", message="no Clearbit API key is configured")
        if op.key == "clearbit.company":
            domain = registrable_domain(inputs.get("domain"))
            if not domain:
                return Result("invalid_input", message="missing input: domain")
            params: dict[str, Any] = {"domain": domain}
        else:
            email = _http.text(inputs.get("email"))
            if not email or "@" not in email:
                return Result("invalid_input", message="Clearbit needs an email address")
            params = {"email": email}
        callback_id = None
        if op.asynchronous and ctx.callback_url:
            callback_id = ctx.callback_id or secrets.token_urlsafe(18)
            params.update(webhook_url=ctx.callback_url, webhook_id=callback_id)
        headers = {"Authorization": f"Bearer {ctx.api_key}", "Accept": "application/json"}
        sent = _http.send(ctx, "GET", self.url(op, ctx), params=params, headers=headers)
        if isinstance(sent, Result):
            return sent
        return self._interpret(op, sent, ctx, callback_id)

    def _interpret(self, op: Operation, response: httpx.Response, ctx: CallContext, callback_id: str | None) -> Result:
        status = response.status_code
        body = _http.json_body(response)
        if status == 202:
            if callback_id:
                return Result("pending", http_status=202, callback_id=callback_id, message="Clearbit queued the lookup")
            return Result(
                "retryable",
                http_status=202,
                retry_after=_http.retry_after(response, default=QUEUED_RETRY_AFTER),
                message="Clearbit queued the lookup; asking again later",
            )
        if status != 200:
            return _http.classify_error(response, _error_message(body, status), secrets=(ctx.api_key,))
        values = VALUES[op.key](body)
        if values is None:
            return Result("not_found", http_status=status, message="Clearbit found no data")
        return Result("hit", values=values, http_status=status)


PROVIDER = register(
    ClearbitProvider(
        name=NAME,
        label="Clearbit",
        operations=(PERSON, COMPANY, COMBINED),
        default_base_url=DEFAULT_BASE_URL,
        default_rate=10.0,
        url_setting="CLEARBIT_URL",
        key_setting="CLEARBIT_API_KEY",
    )
)
