"""Salesforce REST as summarised in the contract: the web-server OAuth flow on a login host
(``/services/oauth2/authorize`` consent page, ``/token``, ``/revoke``, the ``id`` identity URL),
and on the instance (this same sandbox): ``/services/data/`` versions, describe of Contact, Lead
and Account, upsert of one record by an external id (``PATCH
/services/data/vXX.X/sobjects/{SObject}/{ExternalIdField}/{value}``, 201 or 200), sObject
Collections upsert by an external id (``PATCH
/services/data/vXX.X/composite/sobjects/{SObject}/{ExternalIdField}``, 200 records, per-record
results, ``allOrNone``), deleted records (``GET
/services/data/vXX.X/sobjects/{SObject}/deleted/?start=&end=``, 30 days back; the test control
``/_sandbox/salesforce/delete`` deletes records) and a SOQL subset (``SELECT f, … FROM X [WHERE f
op v [AND f op v …]] [ORDER BY f [ASC|DESC]] [LIMIT n]``, ``v`` a quoted literal or a datetime)
with ``nextRecordsUrl`` paging.

As Salesforce does it: the token answer has no ``expires_in`` (the session lasts ``token_ttl``
seconds, then every call is a 401 ``INVALID_SESSION_ID``); each data answer carries
``Sforce-Limit-Info: api-usage=n/limit`` and past the daily limit a 403
``REQUEST_LIMIT_EXCEEDED``; a missing required field is ``REQUIRED_FIELD_MISSING`` and an
external id repeated in one request ``DUPLICATE_EXTERNAL_ID``, per record.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes import crm_oauth
from morket.providers.sandboxes.crm_oauth import Grant, OAuthState
from morket.providers.sandboxes.server import Call, ProviderSandbox, json_response

API_VERSION = "62.0"
COLLECTION_MAX = 200
ORG_ID = "00D5g000004SbxYEAS"
USER_ID = "0055g00000ABCDeAAF"
ACCOUNT = {"org_id": ORG_ID, "user_id": USER_ID, "username": "demo.admin@morket-demo.example",
           "display_name": "Demo Admin", "org_name": "Morket Demo Org"}  # fmt: skip
PREFIXES = {"Account": "001", "Contact": "003", "Lead": "00Q"}

# name -> (label, type, required on create, external id / unique, updateable)
_SYSTEM = {
    "Id": ("Record ID", "id", False, False, False),
    "CreatedDate": ("Created Date", "datetime", False, False, False),
    "LastModifiedDate": ("Last Modified Date", "datetime", False, False, False),
    "Morket_Id__c": ("Morket ID", "string", False, True, True),
}
FIELDS: dict[str, dict[str, tuple[str, str, bool, bool, bool]]] = {
    "Contact": {
        "FirstName": ("First Name", "string", False, False, True),
        "LastName": ("Last Name", "string", True, False, True),
        "Email": ("Email", "email", False, False, True),
        "Title": ("Title", "string", False, False, True),
        "Phone": ("Business Phone", "phone", False, False, True),
        "LinkedIn_URL__c": ("LinkedIn URL", "url", False, False, True),
        **_SYSTEM,
    },
    "Lead": {
        "FirstName": ("First Name", "string", False, False, True),
        "LastName": ("Last Name", "string", True, False, True),
        "Company": ("Company", "string", True, False, True),
        "Email": ("Email", "email", False, False, True),
        "Title": ("Title", "string", False, False, True),
        "Phone": ("Phone", "phone", False, False, True),
        "Website": ("Website", "url", False, False, True),
        "NumberOfEmployees": ("Employees", "int", False, False, True),
        **_SYSTEM,
    },
    "Account": {
        "Name": ("Account Name", "string", True, False, True),
        "Website": ("Website", "url", False, False, True),
        "Industry": ("Industry", "picklist", False, False, True),
        "NumberOfEmployees": ("Employees", "int", False, False, True),
        "BillingCity": ("Billing City", "string", False, False, True),
        "BillingCountry": ("Billing Country", "string", False, False, True),
        **_SYSTEM,
    },
}
_DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)$")
_QUOTED = r"'(?:[^'\\]|\\.)*'"
# A value, or for IN a parenthesised list of quoted values.
_VALUE = rf"{_QUOTED}|[\w:.+-]+|\((?:\s*{_QUOTED}\s*,?)+\)"
_OPS = r"=|!=|>=|<=|>|<|IN(?=\s*\()"
_COND_RE = re.compile(rf"(?P<field>\w+)\s*(?P<op>{_OPS})\s*(?P<value>{_VALUE})")
_BARE_COND = rf"\w+\s*(?:{_OPS})\s*(?:{_VALUE})"
_IN_ITEM = re.compile(r"'((?:[^'\\]|\\.)*)'")
_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>[\w\s,]+?)\s+FROM\s+(?P<object>\w+)"
    rf"(?:\s+WHERE\s+(?P<where>{_BARE_COND}(?:\s+AND\s+{_BARE_COND})*))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>\w+)(?:\s+(?P<dir>ASC|DESC))?)?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE,
)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}+0000"


def _parse_ts(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _errors(code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    return [{"statusCode": code, "message": message, "fields": fields or []}]


class SalesforceSandbox(ProviderSandbox):
    name = "salesforce"
    public = {"authorize", "authorize_decision", "token", "revoke"}

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.oauth = OAuthState(token_ttl=7200)
        self.daily_limit = 15000
        self.query_batch = 2000
        self.used = 0
        self.records: dict[str, dict[str, dict[str, Any]]] = {o: {} for o in FIELDS}
        self.deleted: dict[str, dict[str, float]] = {o: {} for o in FIELDS}  # id -> when it was deleted
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.next_id = 1
        self.served = 0  # records answered by queries (tests count reads with it)

    def configure(self, values: Any) -> dict[str, Any]:
        clean = crm_oauth.parse_config(
            values, {"token_ttl": float, "daily_limit": int, "query_batch": int, "used": int}
        )
        with self.lock:
            if "token_ttl" in clean:
                self.oauth.token_ttl = clean["token_ttl"]
            for name in ("daily_limit", "query_batch", "used"):
                if name in clean:
                    setattr(self, name, max(1, clean[name]) if name == "query_batch" else clean[name])
            return {"token_ttl": self.oauth.token_ttl, "daily_limit": self.daily_limit,
                    "query_batch": self.query_batch, "used": self.used}  # fmt: skip

    def admin(self, action: str, request: Request) -> Response | None:
        if action == "reset" and request.method == "POST":
            self.reset()
            return json_response({"ok": True})
        if action in ("seed", "touch") and request.method == "POST":
            return self._seed(request.get_json(silent=True) or {}, touch=action == "touch")
        if action == "served" and request.method == "GET":
            with self.lock:
                return json_response({"records": self.served})
        if action == "delete" and request.method == "POST":
            return self._delete_records(request.get_json(silent=True) or {})
        with self.lock:
            counts = {o: len(r) for o, r in self.records.items()}
        return crm_oauth.admin_answer(request, self.oauth, counts, self.configure)

    # -- routing and auth ---------------------------------------------------------------------

    def operation_for(self, method: str, route: str) -> str | None:
        if route == "/services/oauth2/authorize":
            return {"GET": "authorize", "POST": "authorize_decision"}.get(method)
        if route == "/services/oauth2/token" and method == "POST":
            return "token"
        if route == "/services/oauth2/revoke" and method in ("POST", "GET"):
            return "revoke"
        if route.startswith("/id/") and method == "GET":
            return "identity"
        if route in ("/services/data", "/services/data/") and method == "GET":
            return "versions"
        match = _DATA.match(route)
        if not match:
            return None
        rest = match.group(2)
        if method == "GET" and re.fullmatch(r"/sobjects/\w+/describe/?", rest):
            return "describe"
        if method == "PATCH" and re.fullmatch(r"/composite/sobjects/\w+/\w+", rest):
            return "collection_upsert"
        if method == "PATCH" and re.fullmatch(r"/sobjects/\w+/\w+/[^/]+", rest):
            return "record_upsert"
        if method == "GET" and re.fullmatch(r"/sobjects/\w+/deleted/?", rest):
            return "deleted"
        if method == "GET" and rest in ("/query", "/query/"):
            return "query"
        if method == "GET" and re.fullmatch(r"/query/[\w-]+", rest):
            return "query_more"
        return None

    def key_of(self, request: Request) -> str | None:
        return crm_oauth.bearer(request)

    def authenticate(self, operation: str, key: str | None) -> Response | None:
        if operation in self.public:
            return None
        token, _why = self.oauth.check_access(key)
        if token is None:
            return json_response([{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}], 401)
        if operation in ("identity", "versions"):
            return None
        with self.lock:
            if self.used >= self.daily_limit:
                return json_response(
                    [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}],
                    403,
                    {"Sforce-Limit-Info": f"api-usage={self.used}/{self.daily_limit}"},
                )
            self.used += 1
        return None

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        codes = {429: "REQUEST_LIMIT_EXCEEDED", 401: "INVALID_SESSION_ID", 404: "NOT_FOUND"}
        return json_response([{"message": message, "errorCode": codes.get(status, code)}], status, headers)

    def handle(self, call: Call) -> Response:
        op, request = call.operation, call.request
        if op in ("authorize", "authorize_decision"):
            return self._authorize(request)
        if op == "token":
            return self._token(request)
        if op == "revoke":
            token = request.form.get("token") or request.args.get("token") or ""
            if not self.oauth.revoke(token):
                return json_response({"error": "unsupported_token_type", "error_description": "invalid token"}, 400)
            return Response(status=200)
        if op == "identity":
            return self._identity(request)
        base = f"{request.host_url.rstrip('/')}/{self.name}"
        if op == "versions":
            return json_response([{"label": "Winter '25", "url": f"/services/data/v{API_VERSION}",
                                   "version": API_VERSION}])  # fmt: skip
        route = "/" + request.path.lstrip("/").partition("/")[2]
        rest = _DATA.match(route).group(2)
        response = getattr(self, f"_{op}")(request, rest, base)
        with self.lock:
            response.headers["Sforce-Limit-Info"] = f"api-usage={self.used}/{self.daily_limit}"
        return response

    # -- OAuth --------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> Response:
        params = request.args if request.method == "GET" else request.form
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        if not client_id or not crm_oauth.redirect_uri_ok(redirect_uri):
            return Response("error=invalid_client_id: the client id or redirect_uri is invalid", 400)
        scopes = (params.get("scope") or "api refresh_token").split()
        hidden = {k: params.get(k, "") for k in ("client_id", "redirect_uri", "scope", "state", "code_challenge",
                                                 "code_challenge_method", "response_type")}  # fmt: skip
        if request.method == "GET":
            return crm_oauth.consent_page(
                provider="Salesforce", app_name="Morket", account=ACCOUNT["username"], scopes=scopes, hidden=hidden
            )
        state = params.get("state", "")
        if params.get("decision") != "allow":
            return crm_oauth.redirect(
                redirect_uri,
                {"error": "access_denied", "error_description": "end-user denied authorization", "state": state},
            )
        code = self.oauth.issue_code(hidden | {"scopes": " ".join(scopes)}, dict(ACCOUNT))
        return crm_oauth.redirect(redirect_uri, {"code": code, "state": state})

    def _token(self, request: Request) -> Response:
        form = request.form
        bad = {"error": "invalid_grant", "error_description": "expired access/refresh token"}
        if not crm_oauth.client_ok(form.get("client_id"), form.get("client_secret")):
            return json_response({"error": "invalid_client", "error_description": "invalid client credentials"}, 400)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            found = self.oauth.take_code(form.get("code", ""))
            if found is None or found["client_id"] != form.get("client_id"):
                return json_response({"error": "invalid_grant", "error_description": "invalid authorization code"}, 400)
            if found["redirect_uri"] != form.get("redirect_uri"):
                return json_response({"error": "redirect_uri_mismatch", "error_description": "redirect_uri must "
                                      "match configuration"}, 400)  # fmt: skip
            challenge = found.get("code_challenge")
            if challenge and not crm_oauth.pkce_matches(
                challenge, found.get("code_challenge_method") or "S256", form.get("code_verifier")
            ):
                return json_response({"error": "invalid_grant", "error_description": "invalid code verifier"}, 400)
            grant = Grant(found["client_id"], found["scopes"].split(), found["account"])
            self.oauth.count("authorization_code")
            access, refresh = self.oauth.new_tokens(grant, with_refresh="refresh_token" in grant.scopes, prefix="00D")
        elif grant_type == "refresh_token":
            grant = self.oauth.grant_of_refresh(form.get("refresh_token", ""))
            if grant is None or grant.client_id != form.get("client_id"):
                return json_response(bad, 400)
            self.oauth.count("refresh_token")
            access, refresh = self.oauth.new_tokens(grant, with_refresh=False, prefix="00D")
        else:
            return json_response(
                {"error": "unsupported_grant_type", "error_description": "grant type not supported"}, 400
            )
        base = f"{request.host_url.rstrip('/')}/{self.name}"
        body = {"access_token": access, "signature": secrets.token_urlsafe(32), "scope": " ".join(grant.scopes),
                "instance_url": base, "id": f"{base}/id/{ORG_ID}/{USER_ID}", "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000))}  # fmt: skip
        if refresh:
            body["refresh_token"] = refresh
        return json_response(body, headers={"Cache-Control": "no-store"})

    def _identity(self, request: Request) -> Response:
        found, _ = self.oauth.check_access(crm_oauth.bearer(request))
        account = found.grant.account
        return json_response({"id": request.base_url, "user_id": account["user_id"],
                              "organization_id": account["org_id"], "username": account["username"],
                              "display_name": account["display_name"], "email": account["username"],
                              "active": True, "user_type": "STANDARD",
                              "urls": {"rest": f"{request.host_url.rstrip('/')}/{self.name}/services/data/"
                                               "v{version}/"}})  # fmt: skip

    # -- data ---------------------------------------------------------------------------------

    def _describe(self, request: Request, rest: str, base: str) -> Response:
        sobject = rest.split("/")[2]
        if sobject not in FIELDS:
            return self.error(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        fields = [
            {"name": name, "label": label, "type": type_, "length": 255 if type_ in ("string", "email", "url") else 0,
             "externalId": external, "unique": external, "idLookup": external or name in ("Id", "Email"),
             "updateable": updateable, "createable": updateable, "nillable": not required and name != "Id",
             "defaultedOnCreate": name in ("Id", "CreatedDate", "LastModifiedDate"), "custom": name.endswith("__c")}
            for name, (label, type_, required, external, updateable) in FIELDS[sobject].items()
        ]  # fmt: skip
        return json_response({"name": sobject, "label": sobject, "custom": False, "createable": True,
                              "updateable": True, "queryable": True, "keyPrefix": PREFIXES[sobject],
                              "fields": fields,
                              "urls": {"sobject": f"/services/data/v{API_VERSION}/sobjects/{sobject}"}})  # fmt: skip

    def _collection_upsert(self, request: Request, rest: str, base: str) -> Response:
        _, _, _, sobject, ext_field = rest.split("/")
        if sobject not in FIELDS:
            return self.error(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        fields = FIELDS[sobject]
        if ext_field not in fields or not fields[ext_field][3]:
            return self.error(
                400, "INVALID_FIELD", f"Field {ext_field} is not an External ID or indexed field for {sobject}"
            )
        body = request.get_json(silent=True)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return self.error(400, "JSON_PARSER_ERROR", "records must be a list of objects")
        if len(records) > COLLECTION_MAX:
            return self.error(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_MAX} records into this call",
            )
        all_or_none = bool(body.get("allOrNone"))
        seen: dict[str, int] = {}
        for record in records:
            value = str(record.get(ext_field) or "")
            seen[value] = seen.get(value, 0) + 1
        results: list[dict[str, Any]] = []
        writes: list[tuple[int, dict[str, Any] | None, dict[str, Any]]] = []
        with self.lock:
            for index, record in enumerate(records):
                value = str(record.get(ext_field) or "").strip()
                values = {k: v for k, v in record.items() if k not in ("attributes", ext_field)}
                kind = (record.get("attributes") or {}).get("type")
                unknown = [k for k in values if k not in fields]
                read_only = [k for k in values if k in fields and not fields[k][4]]
                existing = self._by_external(sobject, ext_field, value) if value else None
                missing = [k for k, f in fields.items() if f[2] and existing is None and not values.get(k)]
                if kind not in (None, sobject):
                    result = _errors("INVALID_TYPE", f"attributes.type must be {sobject}")
                elif not value:
                    result = _errors("MISSING_ARGUMENT", f"{ext_field} not specified", [ext_field])
                elif seen[value] > 1:
                    result = _errors("DUPLICATE_EXTERNAL_ID", f"Duplicate external id specified: {value}", [ext_field])
                elif unknown:
                    result = _errors(
                        "INVALID_FIELD", f"No such column '{unknown[0]}' on sobject of type {sobject}", unknown
                    )
                elif read_only:
                    result = _errors(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {', '.join(read_only)}",
                        read_only,
                    )
                elif missing:
                    result = _errors(
                        "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
                    )
                else:
                    writes.append((index, existing, values | {ext_field: value}))
                    results.append({})
                    continue
                results.append({"success": False, "errors": result})
            if all_or_none and len(writes) != len(records):
                rolled = _errors(
                    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                    "Record rolled back because not all records were valid and the request was using AllOrNone header",
                )
                results = [r if r.get("errors") else {"success": False, "errors": rolled} for r in results]
                return json_response(results)
            for index, existing, values in writes:
                record, created = self._write(sobject, existing, values)
                results[index] = {"id": record["Id"], "success": True, "errors": [], "created": created}
        return json_response(results)

    def _record_upsert(self, request: Request, rest: str, base: str) -> Response:
        """``PATCH /sobjects/{SObject}/{ExternalIdField}/{value}``: 201 created or 200 updated, one record."""
        _, _, sobject, ext_field, value = rest.split("/")
        value = unquote(value)
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return self.error(400, "JSON_PARSER_ERROR", "the body must be a JSON object of fields")
        if ext_field in body or "Id" in body:
            return self.error(400, "INVALID_FIELD", f"{ext_field} and Id are given in the URL, not the body")
        if request.args.get("updateOnly") == "true":
            with self.lock:
                if sobject in FIELDS and self._by_external(sobject, ext_field, value) is None:
                    return self.error(404, "NOT_FOUND", "The requested resource does not exist")
        record = {"attributes": {"type": sobject}, ext_field: value, **body}
        inner = Request.from_values(method="PATCH", json={"allOrNone": True, "records": [record]})
        answer = self._collection_upsert(inner, f"/composite/sobjects/{sobject}/{ext_field}", base)
        result = answer.get_json()
        if answer.status_code != 200:
            return answer
        if not result[0]["success"]:
            first = result[0]["errors"][0]
            return json_response([{"message": first["message"], "errorCode": first["statusCode"],
                                   "fields": first["fields"]}], 400)  # fmt: skip
        return json_response(result[0], 201 if result[0]["created"] else 200)

    def _by_external(self, sobject: str, field: str, value: str) -> dict[str, Any] | None:
        for record in self.records[sobject].values():
            if record.get(field) == value:
                return record
        return None

    def _write(self, sobject: str, record: dict[str, Any] | None, values: dict[str, Any]) -> tuple[dict, bool]:
        now = time.time()
        if record is None:
            self.next_id += 1
            rid = f"{PREFIXES[sobject]}5g{self.next_id:010d}AAA"[:18]
            record = {"Id": rid, "CreatedDate": _iso(now), "_created": now}
            self.records[sobject][rid] = record
            created = True
        else:
            created = False
        record.update(values)
        record["LastModifiedDate"] = _iso(now)
        record["_modified"] = now
        return record, created

    def _query(self, request: Request, rest: str, base: str) -> Response:
        soql = request.args.get("q") or ""
        match = _SOQL.match(soql)
        if not match:
            return self.error(400, "MALFORMED_QUERY", "unexpected token in the query (the sandbox reads SELECT … FROM "
                              "X [WHERE f op v] [ORDER BY f] [LIMIT n])")  # fmt: skip
        sobject = match.group("object")
        if sobject not in FIELDS:
            return self.error(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        fields = FIELDS[sobject]
        selected = [f.strip() for f in match.group("fields").split(",") if f.strip()]
        conditions = [c.groupdict() for c in _COND_RE.finditer(match.group("where") or "")]
        for name in selected + [n for n in (*(c["field"] for c in conditions), match.group("order")) if n]:
            if name not in fields:
                return self.error(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'.")
        with self.lock:
            rows = list(self.records[sobject].values())
        for cond in conditions:
            rows = [r for r in rows if self._where(r, cond["field"], cond["op"], cond["value"])]
        order = match.group("order") or "Id"
        key = "_modified" if order == "LastModifiedDate" else "_created" if order == "CreatedDate" else order
        rows.sort(key=lambda r: (r.get(key) or "", r["Id"]), reverse=(match.group("dir") or "").upper() == "DESC")
        if match.group("limit"):
            rows = rows[: int(match.group("limit"))]
        shaped = [
            {"attributes": {"type": sobject, "url": f"/services/data/v{API_VERSION}/sobjects/{sobject}/{r['Id']}"}}
            | {name: r.get(name) for name in selected}
            for r in rows
        ]
        return self._page(shaped, len(shaped))

    def _seed(self, body: dict[str, Any], *, touch: bool) -> Response:
        """Test control: create records of ``object``, or change some (``ids``) as a user would."""
        sobject = body.get("object", "Contact")
        if sobject not in FIELDS:
            return json_response({"error": "unknown object"}, 400)
        with self.lock:
            if touch:
                found = [self.records[sobject].get(str(i)) for i in body.get("ids") or []]
                return json_response(
                    {"ids": [self._write(sobject, r, dict(body.get("values") or {}))[0]["Id"] for r in found if r]}
                )
            ids = [self._write(sobject, None, dict(v))[0]["Id"] for v in body.get("records") or []]
            return json_response({"ids": ids})

    def _delete_records(self, body: dict[str, Any]) -> Response:
        """Test control: delete records of ``object`` (``ids``) as a user would; ``getDeleted`` lists them.

        ``days_ago`` backdates the deletions: past 30, ``getDeleted`` can no longer name them (as in Salesforce).
        """
        sobject = body.get("object", "Contact")
        if sobject not in FIELDS:
            return json_response({"error": "unknown object"}, 400)
        now = time.time() - float(body.get("days_ago") or 0) * 86400
        with self.lock:
            gone = [str(i) for i in body.get("ids") or [] if self.records[sobject].pop(str(i), None) is not None]
            for rid in gone:
                self.deleted[sobject][rid] = now
        return json_response({"ids": gone})

    def _deleted(self, request: Request, rest: str, base: str) -> Response:
        """``GET /sobjects/{SObject}/deleted/?start=&end=``: records deleted in the range (30 days back at most)."""
        sobject = rest.split("/")[2]
        if sobject not in FIELDS:
            return self.error(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        start, end = _parse_ts(request.args.get("start") or ""), _parse_ts(request.args.get("end") or "")
        if start is None or end is None or end < start:
            return self.error(400, "INVALID_REPLICATION_DATE", "start and end must be dateTimes, start before end")
        earliest = time.time() - 30 * 86400
        if start < earliest:
            return self.error(400, "INVALID_REPLICATION_DATE", "startDate before org replication enabled date")
        with self.lock:
            found = sorted((when, rid) for rid, when in self.deleted[sobject].items() if start <= when <= end)
        return json_response({"deletedRecords": [{"id": rid, "deletedDate": _iso(when)} for when, rid in found],
                              "earliestDateAvailable": _iso(earliest), "latestDateCovered": _iso(end)})  # fmt: skip

    def _page(self, rows: list[dict[str, Any]], total: int) -> Response:
        page, remaining = rows[: self.query_batch], rows[self.query_batch :]
        with self.lock:
            self.served += len(page)
        body: dict[str, Any] = {"totalSize": total, "done": not remaining, "records": page}
        if remaining:
            locator = f"01g5g{secrets.token_hex(6)}-{total - len(remaining)}"
            with self.lock:
                self.cursors[locator] = remaining
            body["nextRecordsUrl"] = f"/services/data/v{API_VERSION}/query/{locator}"
        return json_response(body)

    def _query_more(self, request: Request, rest: str, base: str) -> Response:
        locator = rest.rsplit("/", 1)[-1]
        with self.lock:
            remaining = self.cursors.pop(locator, None)
        if remaining is None:
            return self.error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        total = int(locator.rsplit("-", 1)[-1]) + len(remaining)
        return self._page(remaining, total)

    def _where(self, record: dict[str, Any], field: str, op: str, raw: str) -> bool:
        if op == "IN":
            wanted = {w.replace("\\'", "'").replace("\\\\", "\\") for w in _IN_ITEM.findall(raw)}
            return record.get(field) is not None and str(record.get(field)) in wanted
        if raw.startswith("'"):
            want: Any = unquote(raw[1:-1].replace("\\'", "'").replace("\\\\", "\\"))
        else:
            want = raw
        if field in ("LastModifiedDate", "CreatedDate"):
            have: Any = record["_modified" if field == "LastModifiedDate" else "_created"]
            want = _parse_ts(str(want))
            if want is None:
                return False
        else:
            have = record.get(field)
            if have is None:
                return op == "!="
            have, want = str(have), str(want)
        return {"=": have == want, "!=": have != want, ">": have > want, "<": have < want,
                ">=": have >= want, "<=": have <= want}[op]  # fmt: skip
