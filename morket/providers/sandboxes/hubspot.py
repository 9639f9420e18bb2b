"""HubSpot CRM v3 as summarised in the contract: OAuth (``/oauth/authorize`` consent page,
``/oauth/v1/token``, ``/oauth/v1/access-tokens/{token}``, ``DELETE /oauth/v1/refresh-tokens/{token}``),
properties, and contacts and companies (create, read, list with ``after`` cursors, batch upsert by a
unique ``idProperty``, batch read, search), and lists (``GET /crm/v3/lists/{listId}``, ``POST
/crm/v3/lists/search``, ``POST /crm/v3/lists``, ``GET /crm/v3/lists/{listId}/memberships`` with
``after`` paging, ``PUT /crm/v3/lists/{listId}/memberships/add``). Archived (deleted) records
are listed with ``?archived=true`` (with ``archivedAt``) and leave every list; the test controls
``/_sandbox/hubspot/archive`` and ``/unlist`` archive records or take them out of a list.

As HubSpot does it: every property value is a string; ``email`` is unique for contacts, so a
plain create of an existing email is a 409 ``CONFLICT`` while an upsert by email updates; the
custom ``morket_id`` property is unique on both objects (HubSpot's ``domain`` is not); an
unknown property makes that input fail in a 207 ``…WithErrors`` answer; more than 100 inputs or
a repeated id is a 400 ``VALIDATION_ERROR``; a malformed contact email fails that input with
``INVALID_EMAIL``. Limits: a rolling ten-second window per portal
(``window_limit`` requests), with the ``X-HubSpot-RateLimit-*`` headers on every answer and a 429
``TEN_SECONDLY_ROLLING`` with ``Retry-After`` over it. An expired, revoked or unknown token is a 401.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import crm_oauth
from morket.providers.sandboxes.crm_oauth import Grant, OAuthState
from morket.providers.sandboxes.server import Call, ProviderSandbox, json_response

OBJECTS = ("contacts", "companies")
BATCH_MAX = 100
SEARCH_MAX = 200
LIST_MAX = 100
WINDOW_SECONDS = 10.0
ACCOUNT = {"hub_id": 24681357, "hub_domain": "morket-demo.hubspot.com", "user": "demo.admin@morket-demo.example",
           "user_id": 7700123, "app_id": 301234}  # fmt: skip
DEFAULT_SCOPES = ["oauth"]

# name -> (label, type, fieldType, unique, read only)
_COMMON = {
    "hs_object_id": ("Record ID", "number", "number", True, True),
    "createdate": ("Create date", "datetime", "date", False, True),
    "lastmodifieddate": ("Last modified date", "datetime", "date", False, True),
    "morket_id": ("Morket ID", "string", "text", True, False),
}
PROPERTIES: dict[str, dict[str, tuple[str, str, str, bool, bool]]] = {
    "contacts": {
        "email": ("Email", "string", "text", True, False),
        "firstname": ("First name", "string", "text", False, False),
        "lastname": ("Last name", "string", "text", False, False),
        "company": ("Company name", "string", "text", False, False),
        "jobtitle": ("Job title", "string", "text", False, False),
        "phone": ("Phone number", "string", "phonenumber", False, False),
        "website": ("Website URL", "string", "text", False, False),
        "linkedin_url": ("LinkedIn URL", "string", "text", False, False),
        "lifecyclestage": ("Lifecycle stage", "enumeration", "radio", False, False),
        "num_employees": ("Employees", "number", "number", False, False),
        **_COMMON,
    },
    "companies": {
        "name": ("Company name", "string", "text", False, False),
        "domain": ("Company domain name", "string", "text", False, False),
        "industry": ("Industry", "enumeration", "select", False, False),
        "numberofemployees": ("Number of employees", "number", "number", False, False),
        "city": ("City", "string", "text", False, False),
        "country": ("Country/Region", "string", "text", False, False),
        "annualrevenue": ("Annual revenue", "number", "number", False, False),
        "linkedin_company_page": ("LinkedIn company page", "string", "text", False, False),
        **_COMMON,
    },
}
_PATH = re.compile(r"^/crm/v3/objects/(contacts|companies)(?:/(batch/upsert|batch/read|search|[^/]+))?$")
_PROPS_PATH = re.compile(r"^/crm/v3/properties/(contacts|companies)$")
_LISTS_PATH = re.compile(r"^/crm/v3/lists(?:/(search)|/(\d+)(?:/(memberships|memberships/add))?)?$")
MEMBERSHIPS_MAX = 250
OBJECT_TYPE_IDS = {"contacts": "0-1", "companies": "0-2"}
_TOKEN_PATH = re.compile(r"^/oauth/v1/(access-tokens|refresh-tokens)/([^/]+)$")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _ms(value: str) -> float | None:
    """A datetime filter value: ms epoch or ISO 8601; None when neither."""
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
    except ValueError:
        return None


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _bad_email(value: str) -> str | None:
    """HubSpot's refusal of a malformed email (``INVALID_EMAIL``), as the batch endpoints word it."""
    if _EMAIL.match(value.strip()):
        return None
    detail = {"isValid": False, "message": f"Email address {value} is invalid", "error": "INVALID_EMAIL",
              "name": "email"}  # fmt: skip
    return f"Property values were not valid: {json.dumps([detail])}"


class HubSpotSandbox(ProviderSandbox):
    name = "hubspot"
    public = {"authorize", "authorize_decision", "token", "token_info", "revoke"}

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    # -- state --------------------------------------------------------------------------------

    def reset(self) -> None:
        self.oauth = OAuthState(token_ttl=1800)
        self.window_limit = 100
        self.calls: deque[float] = deque()
        self.records: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in OBJECTS}
        self.archived: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in OBJECTS}  # deleted, restorable
        self.next_id = 1000
        # listId -> {"name", "object", "created", "members": {record id: added ms}}
        self.lists: dict[str, dict[str, Any]] = {}
        self.next_list_id = 100
        self.served = 0  # records answered by read, list, batch read and search (tests count reads with it)
        self.refused = 0  # calls refused with a 429 (tests check a push stayed inside the window)

    def configure(self, values: Any) -> dict[str, Any]:
        clean = crm_oauth.parse_config(values, {"token_ttl": float, "window_limit": int})
        with self.lock:
            if "token_ttl" in clean:
                self.oauth.token_ttl = clean["token_ttl"]
            if "window_limit" in clean:
                self.window_limit = max(1, clean["window_limit"])
            return {"token_ttl": self.oauth.token_ttl, "window_limit": self.window_limit}

    def admin(self, action: str, request: Request) -> Response | None:
        if action == "reset" and request.method == "POST":
            self.reset()
            return json_response({"ok": True})
        if action == "served" and request.method == "GET":
            with self.lock:
                return json_response({"records": self.served, "rate_limited": self.refused})
        if action in ("seed", "touch") and request.method == "POST":
            return self._seed(request.get_json(silent=True) or {}, touch=action == "touch")
        if action in ("archive", "unlist") and request.method == "POST":
            return self._archive(request.get_json(silent=True) or {}, unlist_only=action == "unlist")
        with self.lock:
            counts = {o: len(r) for o, r in self.records.items()}
        return crm_oauth.admin_answer(request, self.oauth, counts, self.configure)

    # -- routing and auth ---------------------------------------------------------------------

    def operation_for(self, method: str, route: str) -> str | None:
        if route == "/oauth/authorize":
            return {"GET": "authorize", "POST": "authorize_decision"}.get(method)
        if route in ("/oauth/v1/token", "/oauth/v3/token") and method == "POST":
            return "token"
        match = _TOKEN_PATH.match(route)
        if match:
            return {("GET", "access-tokens"): "token_info", ("DELETE", "refresh-tokens"): "revoke"}.get(
                (method, match.group(1))
            )
        if _PROPS_PATH.match(route) and method == "GET":
            return "properties"
        match = _LISTS_PATH.match(route)
        if match:
            if match.group(1):
                return "list_search" if method == "POST" else None
            if match.group(2) is None:
                return "list_create" if method == "POST" else None
            tail = match.group(3)
            if tail is None:
                return "list_get" if method == "GET" else None
            if tail == "memberships":
                return "list_members" if method == "GET" else None
            return "list_add" if method == "PUT" else None
        match = _PATH.match(route)
        if not match:
            return None
        tail = match.group(2)
        if tail is None:
            return {"GET": "list", "POST": "create"}.get(method)
        if tail in ("batch/upsert", "batch/read", "search"):
            return tail.replace("/", "_") if method == "POST" else None
        return "read" if method == "GET" else None

    def key_of(self, request: Request) -> str | None:
        return crm_oauth.bearer(request)

    def authenticate(self, operation: str, key: str | None) -> Response | None:
        if operation in self.public:
            return None
        token, why = self.oauth.check_access(key)
        if token is None:
            message = {
                "expired": "The OAuth token used to make this call expired.",
                "missing": "Authentication credentials not found.",
            }.get(why, "Authentication credentials not found. This API supports OAuth 2.0 authentication.")
            return self.error(401, "INVALID_AUTHENTICATION", message, sub="EXPIRED" if why == "expired" else None)
        return self._window()

    def _window(self) -> Response | None:
        now = time.monotonic()
        with self.lock:
            while self.calls and now - self.calls[0] >= WINDOW_SECONDS:
                self.calls.popleft()
            if len(self.calls) >= self.window_limit:
                wait = max(0.05, WINDOW_SECONDS - (now - self.calls[0]))
                self.refused += 1
                return self._rate_limited(wait)
            self.calls.append(now)
        return None

    def _limit_headers(self) -> dict[str, str]:
        with self.lock:
            remaining = max(0, self.window_limit - len(self.calls))
        return {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.window_limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
        }

    def _rate_limited(self, wait: float) -> Response:
        body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                "policyName": "TEN_SECONDLY_ROLLING"}  # fmt: skip
        headers = {
            "Retry-After": f"{wait:.2f}",
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(WINDOW_SECONDS * 1000)),
            "X-HubSpot-RateLimit-Max": str(self.window_limit),
            "X-HubSpot-RateLimit-Remaining": "0",
        }
        return json_response(body, 429, headers)

    def rate_limited(self, wait: float) -> Response:
        return self._rate_limited(wait)

    def error(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        sub: str | None = None,
        context: dict[str, list[str]] | None = None,
    ) -> Response:
        body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                                "category": code}  # fmt: skip
        if sub:
            body["subCategory"] = sub
        if context:
            body["context"] = context
        return json_response(body, status, headers)

    # -- handlers -----------------------------------------------------------------------------

    def handle(self, call: Call) -> Response:
        op = call.operation
        request = call.request
        if op in ("authorize", "authorize_decision"):
            return self._authorize(request)
        if op == "token":
            return self._token(request)
        if op == "token_info":
            return self._token_info(request.path.rsplit("/", 1)[-1])
        if op == "revoke":
            token = request.path.rsplit("/", 1)[-1]
            if not self.oauth.revoke(token):
                return self.error(404, "OBJECT_NOT_FOUND", "refresh token not found")
            return Response(status=204)
        route = "/" + request.path.lstrip("/").partition("/")[2]
        if op.startswith("list_"):
            response = getattr(self, f"_{op}")(request, route)
            response.headers.extend(self._limit_headers())
            return response
        obj = (_PROPS_PATH.match(route) or _PATH.match(route)).group(1)
        handler = getattr(self, f"_{op}")
        response = handler(obj, request, route)
        response.headers.extend(self._limit_headers())
        return response

    def _authorize(self, request: Request) -> Response:
        params = request.args if request.method == "GET" else request.form
        client_id = params.get("client_id", "")
        redirect_uri = params.get("redirect_uri", "")
        if not client_id or not crm_oauth.redirect_uri_ok(redirect_uri):
            return Response("Authorization failed because the client_id or redirect_uri is invalid.", 400)
        scopes = (params.get("scope") or "").split() or DEFAULT_SCOPES
        hidden = {k: params.get(k, "") for k in ("client_id", "redirect_uri", "scope", "state", "code_challenge",
                                                 "code_challenge_method")}  # fmt: skip
        if request.method == "GET":
            return crm_oauth.consent_page(
                provider="HubSpot", app_name="Morket", account=ACCOUNT["hub_domain"], scopes=scopes, hidden=hidden
            )
        state = params.get("state", "")
        if params.get("decision") != "allow":
            return crm_oauth.redirect(
                redirect_uri, {"error": "access_denied", "error_description": "The user denied access", "state": state}
            )
        code = self.oauth.issue_code(hidden | {"scopes": " ".join(scopes)}, dict(ACCOUNT))
        return crm_oauth.redirect(redirect_uri, {"code": code, "state": state})

    def _oauth_error(self, error: str, message: str, status: int = 400) -> Response:
        return json_response({"status": "BAD_REQUEST" if status == 400 else "UNAUTHORIZED", "message": message,
                              "error": error, "error_description": message, "correlationId": str(uuid.uuid4())},
                             status)  # fmt: skip

    def _token(self, request: Request) -> Response:
        form = request.form
        if not crm_oauth.client_ok(form.get("client_id"), form.get("client_secret")):
            return self._oauth_error("invalid_client", "missing or unknown client id", 401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            found = self.oauth.take_code(form.get("code", ""))
            if found is None or found["client_id"] != form.get("client_id"):
                return self._oauth_error("invalid_grant", "missing or invalid authorization code")
            if found["redirect_uri"] != form.get("redirect_uri"):
                return self._oauth_error("invalid_grant", "redirect_uri does not match the authorize request")
            challenge = found.get("code_challenge")
            if challenge and not crm_oauth.pkce_matches(
                challenge, found.get("code_challenge_method") or "plain", form.get("code_verifier")
            ):
                return self._oauth_error("invalid_grant", "code_verifier does not match the code_challenge")
            grant = Grant(found["client_id"], found["scopes"].split(), found["account"])
            self.oauth.count("authorization_code")
            access, refresh = self.oauth.new_tokens(grant, with_refresh=True, prefix="hs")
        elif grant_type == "refresh_token":
            refresh = form.get("refresh_token", "")
            grant = self.oauth.grant_of_refresh(refresh)
            if grant is None or grant.client_id != form.get("client_id"):
                return self._oauth_error("BAD_REFRESH_TOKEN", "missing or invalid refresh token")
            self.oauth.count("refresh_token")
            access, _ = self.oauth.new_tokens(grant, with_refresh=False, prefix="hs")
        else:
            return self._oauth_error("unsupported_grant_type", f"unsupported grant_type {grant_type!r}")
        body = {"access_token": access, "refresh_token": refresh, "expires_in": int(self.oauth.token_ttl),
                "token_type": "bearer", "token_use": "access", "hub_id": grant.account["hub_id"],
                "user_id": grant.account["user_id"], "scopes": grant.scopes}  # fmt: skip
        return json_response(body, headers={"Cache-Control": "no-store"})

    def _token_info(self, token: str) -> Response:
        found, why = self.oauth.check_access(token)
        if found is None:
            return self.error(404 if why == "unknown" else 401, "EXPIRED_AUTHENTICATION", f"token {why}")
        account = found.grant.account
        return json_response({"token": token, "user": account["user"], "hub_domain": account["hub_domain"],
                              "scopes": found.grant.scopes, "hub_id": account["hub_id"], "app_id": account["app_id"],
                              "expires_in": max(0, int(found.expires_at - time.time())), "user_id": account["user_id"],
                              "token_type": "access"})  # fmt: skip

    def _properties(self, obj: str, request: Request, route: str) -> Response:
        results = [
            {"name": name, "label": label, "type": type_, "fieldType": field_type,
             "groupName": obj[:-1] + "information",
             "description": "", "hasUniqueValue": unique, "hidden": False, "calculated": False,
             "modificationMetadata": {"archivable": not read_only, "readOnlyDefinition": True,
                                      "readOnlyValue": read_only},
             "formField": not read_only, "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
             "options": []}
            for name, (label, type_, field_type, unique, read_only) in PROPERTIES[obj].items()
        ]  # fmt: skip
        return json_response({"results": results})

    # -- records --------------------------------------------------------------------------------

    def _public(self, record: dict[str, Any], properties: list[str] | None = None) -> dict[str, Any]:
        props = record["properties"]
        if properties is not None:
            props = {k: props.get(k) for k in properties} | {
                k: props[k] for k in ("hs_object_id", "createdate", "lastmodifieddate")
            }
        answer = {"id": record["id"], "properties": dict(props), "createdAt": _iso(record["created"]),
                  "updatedAt": _iso(record["updated"]), "archived": "archived" in record}  # fmt: skip
        if "archived" in record:
            answer["archivedAt"] = _iso(record["archived"])
        return answer

    def _find(self, obj: str, value: str, id_property: str | None) -> dict[str, Any] | None:
        """The record whose unique ``id_property`` (default: the record id) equals ``value``; call with the lock."""
        records = self.records[obj]
        if not id_property or id_property == "hs_object_id":
            return records.get(str(value))
        wanted = str(value).strip().lower() if id_property == "email" else str(value)
        for record in records.values():
            have = record["properties"].get(id_property)
            if have is not None and (have.lower() if id_property == "email" else have) == wanted:
                return record
        return None

    def _bad_properties(self, obj: str, properties: Any) -> str | None:
        if not isinstance(properties, dict):
            return "properties must be an object of property names to string values"
        defined = PROPERTIES[obj]
        unknown = [k for k in properties if k not in defined]
        if unknown:
            detail = {"isValid": False, "message": f'Property "{unknown[0]}" does not exist',
                      "error": "PROPERTY_DOESNT_EXIST", "name": unknown[0]}  # fmt: skip
            return f"Property values were not valid: {json.dumps([detail])}"
        read_only = [k for k in properties if defined[k][4]]
        if read_only:
            return f'Property "{read_only[0]}" is read only'
        if obj == "contacts" and properties.get("email"):
            return _bad_email(str(properties["email"]))
        return None

    def _write(self, obj: str, record: dict[str, Any] | None, properties: dict[str, Any]) -> tuple[dict, bool]:
        """Create or update a record (call with the lock); values are stored as strings, as HubSpot does."""
        now = int(time.time() * 1000)
        values = {k: "" if v is None else str(v) for k, v in properties.items()}
        if obj == "contacts" and values.get("email"):
            values["email"] = values["email"].strip().lower()
        if record is None:
            self.next_id += 1
            rid = str(self.next_id)
            record = {"id": rid, "created": now, "updated": now,
                      "properties": {"hs_object_id": rid, "createdate": _iso(now)}}  # fmt: skip
            self.records[obj][rid] = record
            created = True
        else:
            created = False
        record["properties"].update(values)
        record["updated"] = now
        record["properties"]["lastmodifieddate"] = _iso(now)
        return record, created

    def _create(self, obj: str, request: Request, route: str) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
        problem = self._bad_properties(obj, body.get("properties"))
        if problem:
            return self.error(400, "VALIDATION_ERROR", problem)
        props = body["properties"]
        with self.lock:
            for prop in ("email", "morket_id"):
                if (obj == "contacts" or prop == "morket_id") and props.get(prop):
                    existing = self._find(obj, props[prop], prop)
                    if existing is not None:
                        noun = "Contact" if obj == "contacts" else "Company"
                        return self.error(409, "CONFLICT", f"{noun} already exists. Existing ID: {existing['id']}")
            record, _ = self._write(obj, None, props)
            return json_response(self._public(record), 201)

    def _read(self, obj: str, request: Request, route: str) -> Response:
        value = route.rsplit("/", 1)[-1]
        id_property = request.args.get("idProperty")
        properties = [p for p in (request.args.get("properties") or "").split(",") if p] or None
        with self.lock:
            record = self._find(obj, value, id_property)
            if record is None:
                return self.error(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.")
            self.served += 1
            return json_response(self._public(record, properties))

    def _list(self, obj: str, request: Request, route: str) -> Response:
        try:
            limit = min(LIST_MAX, max(1, int(request.args.get("limit") or 10)))
            after = int(request.args.get("after") or 0)
        except ValueError:
            return self.error(400, "VALIDATION_ERROR", "limit and after must be numbers")
        properties = [p for p in (request.args.get("properties") or "").split(",") if p] or None
        store = self.archived if request.args.get("archived") == "true" else self.records
        with self.lock:
            ordered = sorted(store[obj].values(), key=lambda r: int(r["id"]))
            page = [r for r in ordered if int(r["id"]) > after][: limit + 1]
            results = [self._public(r, properties) for r in page[:limit]]
            self.served += len(results)
        body: dict[str, Any] = {"results": results}
        if len(page) > limit:
            cursor = page[limit - 1]["id"]
            link = f"{request.host_url.rstrip('/')}{request.path}?after={cursor}"
            body["paging"] = {"next": {"after": cursor, "link": link}}
        return json_response(body)

    def _batch_inputs(self, request: Request) -> tuple[list[dict], Response | None]:
        body = request.get_json(silent=True)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            return [], self.error(400, "VALIDATION_ERROR", "Invalid input JSON: inputs must be a list of objects")
        if len(inputs) > BATCH_MAX:
            return [], self.error(400, "VALIDATION_ERROR", f"Batch input limit is {BATCH_MAX}; got {len(inputs)}.")
        return inputs, None

    def _batch_upsert(self, obj: str, request: Request, route: str) -> Response:
        started = _iso(int(time.time() * 1000))
        inputs, refusal = self._batch_inputs(request)
        if refusal:
            return refusal
        defined = PROPERTIES[obj]
        keys = []
        for item in inputs:
            id_property = item.get("idProperty") or "hs_object_id"
            if "id" not in item or not str(item["id"]).strip():
                return self.error(400, "VALIDATION_ERROR", "Each input needs an id")
            if id_property not in defined or not defined[id_property][3]:
                return self.error(400, "VALIDATION_ERROR", f"{id_property} is not a unique identifier property")
            value = str(item["id"]).strip()
            keys.append((id_property, value.lower() if id_property == "email" else value))
        if len(set(keys)) != len(keys):
            return self.error(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
        results, errors = [], []
        with self.lock:
            for item, (id_property, value) in zip(inputs, keys, strict=True):
                trace = item.get("objectWriteTraceId")
                problem = self._bad_properties(obj, item.get("properties", {}))
                if not problem and obj == "contacts" and id_property == "email":
                    problem = _bad_email(value)
                if problem:
                    error = {"status": "error", "category": "VALIDATION_ERROR", "message": problem,
                             "context": {"ids": [str(item["id"])]}, "errors": []}  # fmt: skip
                    if trace:
                        error["context"]["objectWriteTraceId"] = [trace]
                    errors.append(error)
                    continue
                record = self._find(obj, value, id_property)
                if record is None and id_property == "hs_object_id":
                    errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                                   "message": f"No {obj[:-1]} with id {value}", "context": {"ids": [value]},
                                   "errors": []})  # fmt: skip
                    continue
                props = dict(item.get("properties") or {})
                if record is None:
                    props[id_property] = value
                record, created = self._write(obj, record, props)
                result = self._public(record) | {"new": created}
                if trace:
                    result["objectWriteTraceId"] = trace
                results.append(result)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                "completedAt": _iso(int(time.time() * 1000))}  # fmt: skip
        if errors:
            body |= {"numErrors": len(errors), "errors": errors}
            return json_response(body, 207)
        return json_response(body)

    def _batch_read(self, obj: str, request: Request, route: str) -> Response:
        started = _iso(int(time.time() * 1000))
        inputs, refusal = self._batch_inputs(request)
        if refusal:
            return refusal
        body = request.get_json(silent=True) or {}
        id_property = body.get("idProperty")
        if id_property and (id_property not in PROPERTIES[obj] or not PROPERTIES[obj][id_property][3]):
            return self.error(400, "VALIDATION_ERROR", f"{id_property} is not a unique identifier property")
        properties = body.get("properties") if isinstance(body.get("properties"), list) else None
        results, missing = [], []
        with self.lock:
            for item in inputs:
                record = self._find(obj, str(item.get("id", "")), id_property)
                if record is None:
                    missing.append(str(item.get("id", "")))
                else:
                    results.append(self._public(record, properties))
            self.served += len(results)
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started,
                                  "completedAt": _iso(int(time.time() * 1000))}  # fmt: skip
        if missing:
            answer |= {"numErrors": 1, "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND",
                                                   "message": "Could not get some objects, they may be deleted or "
                                                              "not exist.", "context": {"ids": missing},
                                                   "errors": []}]}  # fmt: skip
            return json_response(answer, 207)
        return json_response(answer)

    def _search(self, obj: str, request: Request, route: str) -> Response:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.error(400, "VALIDATION_ERROR", "Invalid input JSON")
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > 6:
            return self.error(400, "VALIDATION_ERROR", "There can be at most 6 filterGroups")
        try:
            limit = min(SEARCH_MAX, max(1, int(body.get("limit") or 10)))
            after = int(body.get("after") or 0)
        except (TypeError, ValueError):
            return self.error(400, "VALIDATION_ERROR", "limit and after must be numbers")
        defined = PROPERTIES[obj]
        for group in groups:
            for flt in group.get("filters") or []:
                if flt.get("propertyName") not in defined:
                    return self.error(400, "VALIDATION_ERROR", f"Unknown property {flt.get('propertyName')!r}")
        with self.lock:
            found = [r for r in self.records[obj].values() if not groups or any(self._matches(r, g) for g in groups)]
            sorts = body.get("sorts") or ["hs_object_id"]
            first = sorts[0] if isinstance(sorts[0], str) else sorts[0].get("propertyName", "hs_object_id")
            descending = isinstance(sorts[0], dict) and sorts[0].get("direction") == "DESCENDING"
            found.sort(key=lambda r: self._sort_value(r, first), reverse=descending)
            properties = body.get("properties") if isinstance(body.get("properties"), list) else None
            page = [self._public(r, properties) for r in found[after : after + limit]]
            self.served += len(page)
        answer: dict[str, Any] = {"total": len(found), "results": page}
        if after + limit < len(found):
            answer["paging"] = {"next": {"after": str(after + limit)}}
        return json_response(answer)

    def _sort_value(self, record: dict[str, Any], prop: str) -> tuple:
        value = record["properties"].get(prop) or ""
        if prop in ("createdate", "lastmodifieddate"):
            return (record["created"] if prop == "createdate" else record["updated"], int(record["id"]))
        if prop == "hs_object_id":
            return (int(record["id"]),)
        return (value, int(record["id"]))

    def _matches(self, record: dict[str, Any], group: dict[str, Any]) -> bool:
        for flt in group.get("filters") or []:
            name, op = flt.get("propertyName"), flt.get("operator", "EQ")
            have = record["properties"].get(name)
            if name == "lastmodifieddate":
                have = str(record["updated"])
            elif name == "createdate":
                have = str(record["created"])
            if op == "HAS_PROPERTY":
                ok = bool(have)
            elif op == "NOT_HAS_PROPERTY":
                ok = not have
            elif op in ("IN", "NOT_IN"):
                values = [str(v).lower() for v in flt.get("values") or []]
                ok = ((have or "").lower() in values) == (op == "IN")
            elif op == "CONTAINS_TOKEN":
                ok = str(flt.get("value", "")).lower().strip("*") in (have or "").lower()
            else:
                ok = self._compare(have, op, str(flt.get("value", "")), name)
            if not ok:
                return False
        return True

    def _compare(self, have: str | None, op: str, want: str, name: str) -> bool:
        if have is None or have == "":
            return op == "NEQ"
        if (
            name in ("lastmodifieddate", "createdate", "hs_object_id")
            or PROPERTIES["contacts"].get(name, ("",) * 2)[1] == "number"
        ):
            left, right = _ms(have), _ms(want)
            if left is None or right is None:
                return False
        else:
            left, right = have.lower(), want.lower()
        return {"EQ": left == right, "NEQ": left != right, "LT": left < right, "LTE": left <= right,
                "GT": left > right, "GTE": left >= right}.get(op, False)  # fmt: skip

    # -- lists ----------------------------------------------------------------------------------

    def _list_shape(self, list_id: str, found: dict[str, Any]) -> dict[str, Any]:
        return {"listId": list_id, "name": found["name"], "objectTypeId": OBJECT_TYPE_IDS[found["object"]],
                "processingType": "MANUAL", "processingStatus": "COMPLETE", "size": len(found["members"]),
                "createdAt": _iso(found["created"]), "updatedAt": _iso(found["created"])}  # fmt: skip

    def _new_list(self, name: str, obj: str) -> str:
        """Create an empty list (call with the lock); return its id."""
        self.next_list_id += 1
        list_id = str(self.next_list_id)
        self.lists[list_id] = {"name": name, "object": obj, "created": int(time.time() * 1000), "members": {}}
        return list_id

    def _list_of(self, route: str) -> tuple[str, dict[str, Any] | None]:
        list_id = _LISTS_PATH.match(route).group(2)
        return list_id, self.lists.get(list_id)

    def _list_create(self, request: Request, route: str) -> Response:
        body = request.get_json(silent=True)
        by_type = {v: k for k, v in OBJECT_TYPE_IDS.items()}
        if not isinstance(body, dict) or not str(body.get("name") or "").strip():
            return self.error(400, "VALIDATION_ERROR", "name is required")
        if body.get("objectTypeId") not in by_type:
            return self.error(400, "VALIDATION_ERROR", "objectTypeId must be 0-1 (contacts) or 0-2 (companies)")
        with self.lock:
            list_id = self._new_list(str(body["name"]).strip(), by_type[body["objectTypeId"]])
            return json_response({"list": self._list_shape(list_id, self.lists[list_id])})

    def _list_get(self, request: Request, route: str) -> Response:
        with self.lock:
            list_id, found = self._list_of(route)
            if found is None:
                return self.error(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
            return json_response({"list": self._list_shape(list_id, found)})

    def _list_search(self, request: Request, route: str) -> Response:
        body = request.get_json(silent=True) or {}
        query = str(body.get("query") or "").strip().lower()
        try:
            count = min(500, max(1, int(body.get("count") or 20)))
            offset = max(0, int(body.get("offset") or 0))
        except (TypeError, ValueError):
            return self.error(400, "VALIDATION_ERROR", "count and offset must be numbers")
        with self.lock:
            found = [self._list_shape(i, v) for i, v in sorted(self.lists.items(), key=lambda kv: int(kv[0]))
                     if query in v["name"].lower()]  # fmt: skip
        page = found[offset : offset + count]
        return json_response({"lists": page, "hasMore": offset + count < len(found), "offset": offset + len(page),
                              "total": len(found)})  # fmt: skip

    def _list_members(self, request: Request, route: str) -> Response:
        try:
            limit = min(MEMBERSHIPS_MAX, max(1, int(request.args.get("limit") or 100)))
            after = int(request.args.get("after") or 0)
        except ValueError:
            return self.error(400, "VALIDATION_ERROR", "limit and after must be numbers")
        with self.lock:
            list_id, found = self._list_of(route)
            if found is None:
                return self.error(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
            ordered = sorted((int(rid), added) for rid, added in found["members"].items())
        page = [m for m in ordered if m[0] > after][: limit + 1]
        body: dict[str, Any] = {"results": [{"recordId": str(rid), "membershipTimestamp": _iso(added)}
                                            for rid, added in page[:limit]]}  # fmt: skip
        if len(page) > limit:
            body["paging"] = {"next": {"after": str(page[limit - 1][0])}}
        return json_response(body)

    def _list_add(self, request: Request, route: str) -> Response:
        ids = request.get_json(silent=True)
        if not isinstance(ids, list):
            return self.error(400, "VALIDATION_ERROR", "the body is a list of record ids")
        now = int(time.time() * 1000)
        with self.lock:
            list_id, found = self._list_of(route)
            if found is None:
                return self.error(404, "OBJECT_NOT_FOUND", f"List {list_id} does not exist.")
            known = self.records[found["object"]]
            added = [str(i) for i in ids if str(i) in known and str(i) not in found["members"]]
            missing = [str(i) for i in ids if str(i) not in known]
            for rid in added:
                found["members"][rid] = now
        return json_response({"recordIdsAdded": added, "recordIdsMissing": missing})

    def _archive(self, body: dict[str, Any], *, unlist_only: bool) -> Response:
        """Test control: archive (delete) records as a user would, which also takes them out of every
        list; or (``unlist_only``) take them out of one list (``list_id``)."""
        obj = body.get("object", "contacts")
        if obj not in OBJECTS:
            return json_response({"error": "unknown object"}, 400)
        ids = [str(i) for i in body.get("ids") or []]
        now = int(time.time() * 1000)
        with self.lock:
            if unlist_only:
                found = self.lists.get(str(body.get("list_id")))
                if found is None:
                    return json_response({"error": "unknown list"}, 404)
                gone = [i for i in ids if found["members"].pop(i, None) is not None]
                return json_response({"ids": gone})
            gone = [i for i in ids if i in self.records[obj]]
            for rid in gone:
                record = self.records[obj].pop(rid)
                record["archived"] = now
                self.archived[obj][rid] = record
                for listed in self.lists.values():
                    listed["members"].pop(rid, None)
        return json_response({"ids": gone})

    def _seed(self, body: dict[str, Any], *, touch: bool) -> Response:
        """Test control: create records (and optionally a list of them and of ``members``, ids made earlier),
        or change records as a user would."""
        obj = body.get("object", "contacts")
        if obj not in OBJECTS:
            return json_response({"error": "unknown object"}, 400)
        with self.lock:
            if touch:
                changed = []
                for rid in body.get("ids") or []:
                    record = self.records[obj].get(str(rid))
                    if record is not None:
                        self._write(obj, record, dict(body.get("properties") or {}))
                        changed.append(str(rid))
                return json_response({"ids": changed})
            ids = [self._write(obj, None, dict(props))[0]["id"] for props in body.get("records") or []]
            answer: dict[str, Any] = {"ids": ids}
            if body.get("list"):
                list_id = self._new_list(str(body["list"]), obj)
                now = int(time.time() * 1000)
                members = ids + [str(i) for i in body.get("members") or [] if str(i) in self.records[obj]]
                self.lists[list_id]["members"] = dict.fromkeys(members, now)
                answer["list_id"] = list_id
            return json_response(answer)
