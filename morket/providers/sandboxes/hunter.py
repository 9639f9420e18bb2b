"""Hunter v2 as documented: ``api_key`` query parameter, ``{"data", "meta"}`` answers and
``{"errors": [{"id", "code", "details"}]}`` errors; 429 with Retry-After when the sandbox's
rate limit or quota is exceeded."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import data
from morket.providers.sandboxes.server import Call, ProviderSandbox, json_response


def _domain_ok(domain: str) -> bool:
    return "." in domain and " " not in domain and "@" not in domain and len(domain) <= 253


class HunterSandbox(ProviderSandbox):
    name = "hunter"
    routes = {
        ("GET", "/v2/domain-search"): "domain_search",
        ("GET", "/v2/email-finder"): "email_finder",
        ("GET", "/v2/email-verifier"): "email_verifier",
    }

    def key_of(self, request: Request) -> str | None:
        return request.args.get("api_key") or request.headers.get("X-API-KEY")

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        ids = {429: "too_many_requests", 401: "authentication_failed"}
        return json_response(
            {"errors": [{"id": ids.get(status, code), "code": status, "details": message}]}, status, headers
        )

    def handle(self, call: Call) -> Response:
        args = call.request.args
        params = {k: v for k, v in args.items() if k != "api_key"}
        if call.operation == "email_verifier":
            email = (args.get("email") or "").strip().lower()
            if not email:
                return self.error(400, "wrong_params", "You are missing the email parameter")
            if email.count("@") != 1 or not _domain_ok(email.split("@")[1]):
                return self.error(400, "invalid_email", "The email parameter is invalid")
            status, score = data.verification(email)
            result = {"valid": "deliverable", "invalid": "undeliverable"}.get(status, "risky")
            body = {"status": status, "result": result, "score": score, "email": email, "regexp": True,
                    "gibberish": False, "disposable": status == "disposable", "webmail": status == "webmail",
                    "mx_records": status != "invalid", "smtp_check": status == "valid",
                    "accept_all": status == "accept_all", "block": False, "sources": []}  # fmt: skip
            return json_response({"data": body, "meta": {"params": params}})
        domain = (args.get("domain") or "").strip().lower()
        if not domain:
            return self.error(400, "wrong_params", "You are missing the domain parameter")
        if not _domain_ok(domain):
            return self.error(400, "invalid_domain", "The domain parameter is invalid")
        if call.operation == "domain_search":
            return self._domain_search(domain, params)
        first, last = (args.get("first_name") or "").strip(), (args.get("last_name") or "").strip()
        if not first or not last:
            return self.error(400, "wrong_params", "You are missing the first_name or last_name parameter")
        empty = {"first_name": first, "last_name": last, "email": None, "score": None, "domain": domain,
                 "accept_all": False, "position": None, "company": None, "sources": []}  # fmt: skip
        if not data.person_found(first, last, domain):
            return json_response({"data": empty, "meta": {"params": params}})
        person = data.person(first, last, domain)
        if data.outdated(self.name, call.settings.invalid_emails, first, last, domain):
            person["email"] = data.outdated_email(person["email"])
        found = {**empty, "email": person["email"], "score": person["score"], "position": person["title"],
                 "company": person["organization_name"], "twitter": person["twitter"],
                 "linkedin_url": "https://www." + person["linkedin"],
                 "verification": {"date": "2026-11-01", "status": "valid"}}  # fmt: skip
        return json_response({"data": found, "meta": {"params": params}})

    def _domain_search(self, domain: str, params: dict) -> Response:
        if not data.company_found(domain):
            body = {"domain": domain, "disposable": False, "webmail": False, "accept_all": False,
                    "pattern": None, "organization": None, "emails": []}  # fmt: skip
            return json_response({"data": body, "meta": {"results": 0, "limit": 10, "offset": 0, "params": params}})
        people = data.people_at(domain, 1 + data.seed("count", domain) % 5)
        emails = [
            {"value": p["email"], "type": "personal", "confidence": p["score"], "sources": [],
             "first_name": p["first_name"], "last_name": p["last_name"], "position": p["title"],
             "seniority": p["seniority"], "department": None, "linkedin": None, "twitter": None,
             "phone_number": None, "verification": {"date": None, "status": None}}
            for p in people
        ]  # fmt: skip
        company = data.company(domain)
        body = {"domain": domain, "disposable": False, "webmail": False, "accept_all": False,
                "pattern": "{first}.{last}", "organization": company["name"], "country": None,
                "industry": company["industry"], "emails": emails}  # fmt: skip
        meta = {"results": len(emails), "limit": 10, "offset": 0, "params": params}
        return json_response({"data": body, "meta": meta})
