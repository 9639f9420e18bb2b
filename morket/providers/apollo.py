"""Apollo (api.apollo.io, API v1): people match and organization enrichment.

The published contract this adapter follows:

- Base URL ``https://api.apollo.io`` (``MORKET_APOLLO_URL`` replaces it); paths
  ``POST /api/v1/people/match`` with a JSON body of what we know about the person
  (first_name, last_name, email, domain, organization_name, linkedin_url) and
  ``GET /api/v1/organizations/enrich?domain=``.
- Authentication: the ``X-Api-Key`` header (never the URL, so the key stays out of logs).
- Answers: ``{"person": {...}}`` (``null`` when nobody matches) and ``{"organization": {...}}``
  (``{}`` or ``null`` for an unknown domain): both become ``not_found``.
- Errors: ``{"error": "...", "error_code": "..."}`` or ``{"message": "..."}``. 401 (bad key) and 403
  (the key may not use this endpoint) -> ``auth_error``; 400 and 422 -> ``invalid_input``; 404 ->
  ``not_found``; 429 -> ``rate_limited``; 5xx, timeouts -> ``retryable``.
- Rate limits are per minute, hour and day, reported in ``x-rate-limit-minute`` /
  ``x-minute-requests-left`` (and the hourly and 24-hour pairs). On a 429 we wait for
  Retry-After when sent, else until the window that ran out resets (a minute, an hour, a day).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from morket.core.domains import registrable_domain
from morket.providers import _http
from morket.providers.base import CallContext, FieldSpec, InputSpec, Operation, Provider, Result
from morket.providers.registry import register

NAME = "apollo"
PERSON_INPUTS = ("first_name", "last_name", "email", "domain", "organization_name", "linkedin_url")

PEOPLE_MATCH = Operation(
    key="apollo.people_match",
    provider=NAME,
    label="Apollo: match a person",
    inputs=(
        InputSpec("first_name", "First name", required=False, kind="name"),
        InputSpec("last_name", "Last name", required=False, kind="name"),
        InputSpec("email", "Email", required=False, kind="email"),
        InputSpec("domain", "Company domain", required=False, kind="domain"),
        InputSpec("organization_name", "Company name", required=False),
        InputSpec("linkedin_url", "LinkedIn URL", required=False, kind="url"),
    ),
    outputs=(
        FieldSpec("email", "Email", "email"),
        FieldSpec("title", "Title"),
        FieldSpec("linkedin_url", "LinkedIn URL", "url"),
        FieldSpec("organization_name", "Company"),
        FieldSpec("city", "City"),
        FieldSpec("country", "Country"),
        FieldSpec("seniority", "Seniority"),
    ),
    any_of=PERSON_INPUTS,
)
ORGANIZATION_ENRICH = Operation(
    key="apollo.organization_enrich",
    provider=NAME,
    label="Apollo: enrich a company",
    inputs=(InputSpec("domain", "Company domain", kind="domain"),),
    outputs=(
        FieldSpec("name", "Company name"),
        FieldSpec("industry", "Industry"),
        FieldSpec("employees", "Employees", "number"),
        FieldSpec("linkedin_url", "LinkedIn URL", "url"),
        FieldSpec("website_url", "Website", "url"),
        FieldSpec("founded_year", "Founded", "number"),
        FieldSpec("city", "City"),
        FieldSpec("country", "Country"),
        FieldSpec("description", "Description"),
    ),
)

# Which window ran out, from the "requests left" headers, and how long it lasts.
WINDOWS = (("x-minute-requests-left", 60.0), ("x-hourly-requests-left", 3600.0), ("x-24-hour-requests-left", 86400.0))


def _error_message(body: Any, status: int) -> str:
    if isinstance(body, dict):
        detail = body.get("error") or body.get("message")
        if isinstance(detail, str) and detail:
            return f"Apollo: {detail}"
    return f"Apollo answered HTTP {status}"


def _wait_after_429(response: httpx.Response) -> float:
    if response.headers.get("Retry-After"):
        return _http.retry_after(response)
    for header, window in WINDOWS:
        if response.headers.get(header) == "0":
            return window
    return 60.0


class ApolloProvider(Provider):
    """Apollo's person match and organization enrichment, authenticated with ``X-Api-Key``."""

    def call(
        self, op: Operation, inputs: Mapping[str, Any], ctx: CallContext, options: Mapping[str, Any] | None = None
    ) -> Result:
        """Call ``op`` once and classify the answer (see the module docstring)."""
        if not ctx.api_key:
            return Result("auth_error", message="no Apollo API key is configured")
        headers = {"X-Api-Key": ctx.api_key, "Cache-Control": "no-cache", "Accept": "application/json"}
        if op.key == "apollo.organization_enrich":
            domain = registrable_domain(inputs.get("domain"))
            if not domain:
                return Result("invalid_input", message="missing input: domain")
            url = ctx.base_url + "/api/v1/organizations/enrich"
            sent = _http.send(ctx, "GET", url, params={"domain": domain}, headers=headers)
        else:
            body, problem = self._person_query(inputs)
            if problem is not None:
                return problem
            sent = _http.send(ctx, "POST", ctx.base_url + "/api/v1/people/match", json=body, headers=headers)
        if isinstance(sent, Result):
            return sent
        return self._interpret(op, sent, ctx)

    @staticmethod
    def _person_query(inputs: Mapping[str, Any]) -> tuple[dict[str, str], Result | None]:
        body = {name: value for name in PERSON_INPUTS if (value := _http.text(inputs.get(name)))}
        if "domain" in body:
            body["domain"] = registrable_domain(body["domain"]) or body["domain"]
        named = "first_name" in body and "last_name" in body and ("domain" in body or "organization_name" in body)
        if not ("email" in body or "linkedin_url" in body or named):
            return body, Result(
                "invalid_input",
                message="Apollo needs an email, a LinkedIn URL, or a first and last name with a company",
            )
        return body, None

    def _interpret(self, op: Operation, response: httpx.Response, ctx: CallContext) -> Result:
        status = response.status_code
        body = _http.json_body(response)
        if status == 429:
            return Result(
                "rate_limited",
                http_status=status,
                retry_after=_wait_after_429(response),
                message=_http.redact(_error_message(body, status), ctx.api_key),
            )
        if status != 200:
            return _http.classify_error(response, _error_message(body, status), secrets=(ctx.api_key,))
        if not isinstance(body, dict):
            return Result("retryable", http_status=status, message="Apollo sent an answer that is not JSON")
        if op.key == "apollo.organization_enrich":
            values = self._organization(body.get("organization"))
        else:
            values = self._person(body.get("person"))
        if values is None:
            return Result("not_found", http_status=status, message="Apollo found no match")
        return Result("hit", values=values, http_status=status)

    @staticmethod
    def _person(person: Any) -> dict[str, Any] | None:
        if not isinstance(person, dict) or not person:
            return None
        org = person.get("organization") if isinstance(person.get("organization"), dict) else {}
        return {
            "email": _http.text(person.get("email")),
            "title": _http.text(person.get("title")),
            "linkedin_url": _http.text(person.get("linkedin_url")),
            "organization_name": _http.text(org.get("name") or person.get("organization_name")),
            "city": _http.text(person.get("city")),
            "country": _http.text(person.get("country")),
            "seniority": _http.text(person.get("seniority")),
        }

    @staticmethod
    def _organization(org: Any) -> dict[str, Any] | None:
        if not isinstance(org, dict) or not org:
            return None
        return {
            "name": _http.text(org.get("name")),
            "industry": _http.text(org.get("industry")),
            "employees": _http.as_int(org.get("estimated_num_employees")),
            "linkedin_url": _http.text(org.get("linkedin_url")),
            "website_url": _http.text(org.get("website_url")),
            "founded_year": _http.as_int(org.get("founded_year")),
            "city": _http.text(org.get("city")),
            "country": _http.text(org.get("country")),
            "description": _http.text(org.get("short_description") or org.get("description")),
        }


PROVIDER = register(
    ApolloProvider(
        name=NAME,
        label="Apollo",
        operations=(PEOPLE_MATCH, ORGANIZATION_ENRICH),
        default_base_url="https://api.apollo.io",
        default_rate=50.0,
        url_setting="APOLLO_URL",
        key_setting="APOLLO_API_KEY",
    )
)
