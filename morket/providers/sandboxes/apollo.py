"""Apollo as documented: ``X-Api-Key`` header, ``POST /api/v1/people/match`` (JSON body or query
parameters) answering ``{"person": {...} | null}``, ``GET /api/v1/organizations/enrich?domain=``
answering ``{"organization": {...}}`` or ``{}`` for an unknown domain; errors as
``{"error": "...", "error_code": "..."}``; 429 with Retry-After and x-rate-limit-* headers."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import data
from morket.providers.sandboxes.server import Call, ProviderSandbox, json_response

PERSON_FIELDS = ("first_name", "last_name", "name", "email", "domain", "organization_name", "linkedin_url")


def _organization(domain: str) -> dict:
    c = data.company(domain)
    return {"id": f"org{data.seed('org', domain) % 10**12:012d}", "name": c["name"], "website_url": c["website_url"],
            "primary_domain": domain, "linkedin_url": "http://www." + c["linkedin"],
            "twitter_url": f"https://twitter.com/{c['twitter']}", "industry": c["industry"].lower(),
            "estimated_num_employees": c["employees"], "founded_year": c["founded_year"], "city": c["city"],
            "country": c["country"], "short_description": c["description"]}  # fmt: skip


class ApolloSandbox(ProviderSandbox):
    name = "apollo"
    routes = {
        ("POST", "/api/v1/people/match"): "people_match",
        ("GET", "/api/v1/organizations/enrich"): "organization_enrich",
    }

    def key_of(self, request: Request) -> str | None:
        return request.headers.get("X-Api-Key")

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        if status == 429:
            limit_headers = {"x-rate-limit-minute": "50", "x-minute-requests-left": "0", **(headers or {})}
            return json_response({"message": message}, status, limit_headers)
        codes = {401: "INVALID_API_KEY", 422: "INVALID_PARAMS"}
        return json_response({"error": message, "error_code": codes.get(status, code.upper())}, status, headers)

    def handle(self, call: Call) -> Response:
        response = self._answer(call)
        # Apollo reports its windows on every answer; the sandbox has one (per second) to report.
        response.headers.setdefault("x-rate-limit-minute", str(int(call.settings.rate * 60)))
        return response

    def _answer(self, call: Call) -> Response:
        request = call.request
        if call.operation == "organization_enrich":
            domain = (request.args.get("domain") or "").strip().lower()
            if not domain or "." not in domain or " " in domain:
                return self.error(422, "invalid_params", "domain is missing or invalid")
            if not data.company_found(domain):
                return json_response({})
            return json_response({"organization": _organization(domain)})
        body = request.get_json(silent=True) if request.data else None
        if request.data and not isinstance(body, dict):
            return self.error(400, "bad_request", "the request body is not a JSON object")
        values = {k: str(v).strip() for k, v in {**request.args, **(body or {})}.items() if v not in (None, "")}
        if not any(values.get(f) for f in PERSON_FIELDS):
            return self.error(422, "invalid_params", "give at least a name, an email or a LinkedIn URL")
        email = values.get("email", "").lower()
        if email and (email.count("@") != 1 or "." not in email.split("@")[1]):
            return self.error(422, "invalid_params", "email is invalid")
        first, last = values.get("first_name", ""), values.get("last_name", "")
        if not (first and last) and values.get("name"):
            first, _, last = values["name"].partition(" ")
        domain = values.get("domain", "").lower() or (email.split("@")[1] if email else "")
        if not domain and values.get("organization_name"):
            domain = values["organization_name"].lower().replace(" ", "") + ".com"
        if email and data.person_found(email):
            person = data.person_by_email(email)
        elif first and last and domain and data.person_found(first, last, domain):
            person = data.person(first, last, domain)
            if data.outdated(self.name, call.settings.invalid_emails, first, last, domain):
                person["email"] = data.outdated_email(person["email"])
        else:
            return json_response({"person": None})
        org = _organization(person["domain"])
        found = {"id": f"p{data.seed('p', person['email']) % 10**12:012d}", "first_name": person["first_name"],
                 "last_name": person["last_name"], "name": person["name"],
                 "linkedin_url": "http://www." + person["linkedin"], "title": person["title"],
                 "email_status": "verified", "email": person["email"], "city": person["city"], "state": None,
                 "country": person["country"], "seniority": person["seniority"], "organization_id": org["id"],
                 "organization": org}  # fmt: skip
        return json_response({"person": found})
