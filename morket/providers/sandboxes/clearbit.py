"""Clearbit as documented: a Bearer key (Basic with the key as user name also works), ``GET
/v2/people/find?email=``, ``/v2/companies/find?domain=``, ``/v2/combined/find?email=`` (person
and company hosts share this one base here); 404 ``unknown_record``, 422 invalid input, errors
as ``{"error": {"type", "message"}}``. In asynchronous mode a lookup answers 202 (queued); when
it names a ``webhook_url`` the result is POSTed there after the configured latency as
``{"id": webhook_id, "type", "status", "body"}`` signed ``X-Request-Signature:
sha1=<hex HMAC-SHA1 of the body with the API key>``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.request

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import data
from morket.providers.sandboxes.server import Call, ProviderSandbox, json_response

WEBHOOK_TYPES = {"person": "person", "company": "company", "combined": "person_company"}


def sign(key: str, body: bytes) -> str:
    """Clearbit's webhook signature: ``sha1=`` and the hex HMAC-SHA1 of the body keyed by the API key."""
    return "sha1=" + hmac.new(key.encode(), body, hashlib.sha1).hexdigest()


def _person(email: str) -> dict:
    p = data.person_by_email(email)
    return {"id": f"{data.seed('cb', email):016x}", "email": p["email"],
            "name": {"fullName": p["name"], "givenName": p["first_name"], "familyName": p["last_name"]},
            "location": f"{p['city']}, {p['country']}", "geo": {"city": p["city"], "country": p["country"]},
            "employment": {"domain": p["domain"], "name": p["organization_name"], "title": p["title"],
                           "seniority": p["seniority"]},
            "linkedin": {"handle": p["linkedin"].removeprefix("linkedin.com/")},
            "twitter": {"handle": p["twitter"]}}  # fmt: skip


def _company(domain: str) -> dict:
    c = data.company(domain)
    return {"id": f"{data.seed('cbc', domain):016x}", "name": c["name"], "legalName": c["name"] + " Inc.",
            "domain": domain, "category": {"industry": c["industry"], "sector": None},
            "description": c["description"], "foundedYear": c["founded_year"],
            "location": f"{c['city']}, {c['country']}", "geo": {"city": c["city"], "country": c["country"]},
            "metrics": {"employees": c["employees"]},
            "linkedin": {"handle": c["linkedin"].removeprefix("linkedin.com/")},
            "twitter": {"handle": c["twitter"]}}  # fmt: skip


class ClearbitSandbox(ProviderSandbox):
    name = "clearbit"
    routes = {
        ("GET", "/v2/people/find"): "person",
        ("GET", "/v2/companies/find"): "company",
        ("GET", "/v2/combined/find"): "combined",
    }

    def key_of(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() or None
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value).decode().split(":", 1)[0] or None
            except (ValueError, UnicodeDecodeError):
                return None
        return None

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        types = {401: "auth_required", 404: "unknown_record", 429: "rate_limit"}
        return json_response({"error": {"type": types.get(status, code), "message": message}}, status, headers)

    def defers(self, call: Call) -> bool:
        return bool(call.request.args.get("webhook_url"))

    def lookup(self, operation: str, args: dict) -> tuple[int, dict | None, Response | None]:
        """(status, body, error response) of a lookup, the same for a direct and a webhook answer."""
        if operation == "company":
            domain = (args.get("domain") or "").strip().lower()
            if not domain or "." not in domain or " " in domain:
                return 422, None, self.error(422, "invalid_domain", "Invalid domain")
            if not data.company_found(domain):
                return 404, None, None
            return 200, _company(domain), None
        email = (args.get("email") or "").strip().lower()
        if email.count("@") != 1 or "." not in email.split("@")[1]:
            return 422, None, self.error(422, "invalid_email", "Invalid email")
        person = _person(email) if data.person_found(email) else None
        if operation == "person":
            return (200, person, None) if person else (404, None, None)
        domain = email.split("@")[1]
        company = _company(domain) if data.company_found(domain) else None
        if person is None and company is None:
            return 404, None, None
        return 200, {"person": person, "company": company}, None

    def handle(self, call: Call) -> Response:
        args = dict(call.request.args)
        status, body, error = self.lookup(call.operation, args)
        if error is not None:
            return error
        if call.settings.async_:
            webhook = args.get("webhook_url")
            if webhook:
                threading.Thread(
                    target=self._deliver,
                    args=(call, webhook, args.get("webhook_id"), status, body),
                    daemon=True,
                ).start()
            return json_response({"pending": True}, 202)
        if status == 404:
            return self.error(404, "unknown_record", "Unknown record")
        return json_response(body)

    def _deliver(self, call: Call, url: str, webhook_id: str | None, status: int, body: dict | None) -> None:
        if call.settings.latency_ms:
            time.sleep(call.settings.latency_ms / 1000)
        payload = json.dumps(
            {"id": webhook_id, "type": WEBHOOK_TYPES[call.operation], "status": status, "body": body}
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL the caller asked us to post to
            url,
            data=payload,
            method="POST",
            headers={"Content-Type": "application/json", "X-Request-Signature": sign(call.key, payload)},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                answered = response.status
        except urllib.error.HTTPError as exc:
            answered = exc.code
        except OSError:
            answered = 0
        call.sandbox.record(
            self.name,
            f"webhook:{call.operation}",
            url,
            call.key,
            answered,
            call.request.environ.get("sandbox.generation"),
        )
