"""Hunter (hunter.io API v2): domain search, email finder and email verifier.

The published contract this adapter follows:

- Base URL ``https://api.hunter.io`` (``MORKET_HUNTER_URL`` replaces it), paths
  ``GET /v2/domain-search?domain=``, ``GET /v2/email-finder?domain=&first_name=&last_name=``
  and ``GET /v2/email-verifier?email=``.
- Authentication: the ``api_key`` query parameter. It is therefore part of the URL, so every
  message built from a request or an exception is redacted before it is stored (httpx's own
  request log line carries the URL too; Morket's JSON log format redacts ``api_key=``).
- 222 from the verifier (the remote mail server answered oddly) -> ``retryable``.
- Answers: ``{"data": {...}, "meta": {...}}``; errors: ``{"errors": [{"id", "code", "details"}]}``.
- Status codes: 400 wrong or missing parameters and 422 unprocessable input -> ``invalid_input``;
  401 no valid key -> ``auth_error``; 403 "rate limit reached" (requests per second) and 429
  "usage limit reached" -> ``rate_limited`` (with Retry-After when sent); 404 and 451 (the person
  asked to be removed) -> ``not_found``; 202 from the verifier ("verification in progress,
  try again later") and 5xx -> ``retryable``.
- A search that finds nothing is a 200 with an empty answer (no emails, a null email) and
  becomes ``not_found``.
- Documented limits: 15 requests per second for most endpoints, 10 for the verifier.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from morket.core.domains import registrable_domain
from morket.providers import _http
from morket.providers.base import CallContext, FieldSpec, InputSpec, Operation, Provider, Result
from morket.providers.registry import register

NAME = "hunter"
PATHS = {
    "hunter.domain_search": "/v2/domain-search",
    "hunter.email_finder": "/v2/email-finder",
    "hunter.email_verifier": "/v2/email-verifier",
}
VERIFIER_STATUSES = ("valid", "invalid", "accept_all", "webmail", "disposable", "unknown")

DOMAIN_SEARCH = Operation(
    key="hunter.domain_search",
    provider=NAME,
    label="Hunter: find email addresses at a domain",
    inputs=(InputSpec("domain", "Company domain", kind="domain"),),
    outputs=(
        FieldSpec("organization", "Organization"),
        FieldSpec("emails", "Emails", "json"),
        FieldSpec("pattern", "Email pattern"),
    ),
)
EMAIL_FINDER = Operation(
    key="hunter.email_finder",
    provider=NAME,
    label="Hunter: find a person's work email",
    inputs=(
        InputSpec("domain", "Company domain", kind="domain"),
        InputSpec("first_name", "First name", kind="name"),
        InputSpec("last_name", "Last name", kind="name"),
    ),
    outputs=(
        FieldSpec("email", "Email", "email"),
        FieldSpec("score", "Confidence score", "number"),
        FieldSpec("position", "Position"),
    ),
)
EMAIL_VERIFIER = Operation(
    key="hunter.email_verifier",
    provider=NAME,
    label="Hunter: verify an email address",
    inputs=(InputSpec("email", "Email", kind="email"),),
    outputs=(FieldSpec("status", "Verification status"), FieldSpec("score", "Score", "number")),
    validates=True,
)


def _error_message(body: Any, status: int) -> str:
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0] if isinstance(body["errors"][0], dict) else {}
        details = first.get("details") or first.get("id")
        if details:
            return f"Hunter: {details}"
    return f"Hunter answered HTTP {status}"


class HunterProvider(Provider):
    """Hunter's three lookups, authenticated with the ``api_key`` query parameter."""

    def call(
        self, op: Operation, inputs: Mapping[str, Any], ctx: CallContext, options: Mapping[str, Any] | None = None
    ) -> Result:
        """Call ``op`` once and classify the answer (see the module docstring)."""
        if not ctx.api_key:
            return Result("auth_error", message="no Hunter API key is configured")
        params, problem = self._params(op, inputs)
        if problem is not None:
            return problem
        params["api_key"] = ctx.api_key
        sent = _http.send(ctx, "GET", ctx.base_url + PATHS[op.key], params=params, secrets=(ctx.api_key,))
        if isinstance(sent, Result):
            return sent
        return self._interpret(op, sent, ctx)

    def _params(self, op: Operation, inputs: Mapping[str, Any]) -> tuple[dict[str, Any], Result | None]:
        if op.key == "hunter.email_verifier":
            email = _http.text(inputs.get("email"))
            if not email or "@" not in email:
                return {}, Result("invalid_input", message="Hunter's email verifier needs an email address")
            return {"email": email}, None
        domain = registrable_domain(inputs.get("domain"))
        if not domain:
            return {}, Result("invalid_input", message="missing input: domain")
        if op.key == "hunter.domain_search":
            return {"domain": domain}, None
        problem = _http.missing_inputs(inputs, "first_name", "last_name")
        if problem is not None:
            return {}, problem
        return {
            "domain": domain,
            "first_name": _http.text(inputs["first_name"]),
            "last_name": _http.text(inputs["last_name"]),
        }, None

    def _interpret(self, op: Operation, response: httpx.Response, ctx: CallContext) -> Result:
        status = response.status_code
        body = _http.json_body(response)
        if status == 202:
            return Result(
                "retryable",
                http_status=status,
                retry_after=_http.retry_after(response, default=5.0),
                message="Hunter is still verifying this address",
            )
        if status == 403:
            # Hunter's per-second limit: a short wait, unlike the usage limit's 429.
            return Result(
                "rate_limited",
                http_status=status,
                retry_after=_http.retry_after(response, default=1.0),
                message=_http.redact(_error_message(body, status), ctx.api_key),
            )
        if status == 451:
            return Result("not_found", http_status=status, message="Hunter: the person asked not to be processed")
        if status != 200:
            return _http.classify_error(response, _error_message(body, status), secrets=(ctx.api_key,))
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return Result("retryable", http_status=status, message="Hunter sent an answer without data")
        values = getattr(self, "_values_" + op.key.split(".", 1)[1])(data)
        if values is None:
            return Result("not_found", http_status=status, message="Hunter found no data")
        return Result("hit", values=values, http_status=status)

    @staticmethod
    def _values_domain_search(data: dict[str, Any]) -> dict[str, Any] | None:
        emails = []
        for item in data.get("emails") or []:
            if isinstance(item, dict) and _http.text(item.get("value")):
                emails.append(
                    {
                        "value": item["value"],
                        "type": item.get("type"),
                        "confidence": _http.as_int(item.get("confidence")),
                        "first_name": item.get("first_name"),
                        "last_name": item.get("last_name"),
                        "position": item.get("position"),
                    }
                )
        if not emails and not _http.text(data.get("organization")):
            return None
        return {"organization": _http.text(data.get("organization")), "emails": emails, "pattern": data.get("pattern")}

    @staticmethod
    def _values_email_finder(data: dict[str, Any]) -> dict[str, Any] | None:
        email = _http.text(data.get("email"))
        if not email:
            return None
        return {"email": email, "score": _http.as_int(data.get("score")), "position": _http.text(data.get("position"))}

    @staticmethod
    def _values_email_verifier(data: dict[str, Any]) -> dict[str, Any] | None:
        status = _http.text(data.get("status"))
        if status not in VERIFIER_STATUSES:
            status = "unknown"
        return {"status": status, "score": _http.as_int(data.get("score"))}


PROVIDER = register(
    HunterProvider(
        name=NAME,
        label="Hunter",
        operations=(DOMAIN_SEARCH, EMAIL_FINDER, EMAIL_VERIFIER),
        default_base_url="https://api.hunter.io",
        default_rate=15.0,
        url_setting="HUNTER_URL",
        key_setting="HUNTER_API_KEY",
    )
)
