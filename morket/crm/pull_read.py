"""Reading records out of the CRMs for a pull: HubSpot lists and objects, Salesforce queries built from parts.

Each reader yields pages of ``Record`` (the CRM id, its last-modified time, its field values as
strings) with the cursor to resume after that page. A pull is incremental when it has a
``since`` (the previous pull's high-water mark): HubSpot is asked through search with
``lastmodifieddate GT since``; Salesforce with ``LastModifiedDate > since`` in the query.

SOQL is built here from a source's parts only: the object and field names must be among the
fields ``describe`` returned (so they are identifiers Salesforce knows, never user text), the
operators come from a fixed set, and each value is a quoted, escaped literal (or a checked
number or datetime). A raw query is never accepted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from morket.core.errors import MorketError, ValidationFailed
from morket.crm.client import CrmClient, CrmUnavailable, error_message
from morket.crm.providers import HUBSPOT, SALESFORCE_API_VERSION

PAGE_HUBSPOT_LIST = 100
PAGE_HUBSPOT_SEARCH = 200
PAGE_MEMBERSHIPS = 250
BATCH_READ = 100
IN_VALUES = 100  # values of one IN filter
IDS_PER_SEARCH = 5 * IN_VALUES  # five filter groups of a search (HubSpot allows six)
RETRIES = 8
RETRY_CAP_SECONDS = 10.0
OPERATORS = {"=": "EQ", "!=": "NEQ", ">": "GT", ">=": "GTE", "<": "LT", "<=": "LTE"}
HUBSPOT_MODIFIED = "lastmodifieddate"
SALESFORCE_MODIFIED = "LastModifiedDate"
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_SF_NUMERIC = {"int", "double", "currency", "percent"}
_SF_DATETIME = {"datetime", "date"}


class PullRefused(MorketError):
    """The CRM refused what the pull asked for (a bad field, a list that is gone, limits reached)."""

    status = 422
    code = "crm_pull_refused"


@dataclass
class Record:
    crm_id: str
    modified: str | None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Page:
    records: list[Record]
    cursor: dict[str, Any]
    #: The newest list-membership stamp seen reading this page: a member added after its record
    #: last changed moves the high-water mark too, or the next pull would read it again as "added".
    joined: str | None = None


def send(client: CrmClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One call with retries: a 429 waits for its Retry-After, a 5xx or a dropped connection backs off.

    A 401 is refreshed and retried by the client itself. Gives up after ``RETRIES`` tries.
    """
    for attempt in range(RETRIES):
        try:
            response = client.request(method, path, **kwargs)
        except CrmUnavailable:
            if attempt == RETRIES - 1:
                raise
            time.sleep(min(RETRY_CAP_SECONDS, 0.2 * 2**attempt))
            continue
        if response.status_code == 429 or response.status_code >= 500:
            if attempt == RETRIES - 1:
                break
            try:
                wait = float(response.headers.get("Retry-After") or 0.2 * 2**attempt)
            except ValueError:
                wait = 1.0
            time.sleep(min(RETRY_CAP_SECONDS, max(0.05, wait)))
            continue
        return response
    raise CrmUnavailable(f"The CRM kept refusing (HTTP {response.status_code}: {error_message(response)}); try again.")


def _ok(response: httpx.Response, what: str) -> Any:
    if response.status_code in (200, 207):
        return response.json()
    reason = error_message(response) or f"HTTP {response.status_code}"
    if response.status_code in (400, 403, 404):
        raise PullRefused(f"{what}: {reason}")
    raise CrmUnavailable(f"{what}: {reason}")


def _hs_ms(value: str) -> str:
    return str(int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000))


def _hs_record(item: Mapping[str, Any], fields: Sequence[str]) -> Record:
    props = item.get("properties") or {}
    return Record(
        crm_id=str(item["id"]),
        modified=item.get("updatedAt") or props.get(HUBSPOT_MODIFIED),
        values={f: props.get(f) for f in fields},
    )


def _hs_properties(fields: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*fields, HUBSPOT_MODIFIED]))


# --- HubSpot --------------------------------------------------------------------------------------


def hubspot_list_info(client: CrmClient, list_id: str) -> dict[str, Any]:
    """The list's name and object (contacts or companies); PullRefused when it does not exist."""
    if not str(list_id).isdigit():
        raise ValidationFailed("A HubSpot list id is a number.", fields={"list_id": ["a number"]})
    body = _ok(send(client, "GET", f"/crm/v3/lists/{list_id}"), f"HubSpot list {list_id}")
    found = body.get("list") or {}
    obj = {"0-1": "contacts", "0-2": "companies"}.get(found.get("objectTypeId"))
    if obj is None:
        raise PullRefused(f"HubSpot list {list_id} holds neither contacts nor companies.")
    return {"name": found.get("name") or f"List {list_id}", "object": obj, "size": found.get("size")}


def hubspot_lists(client: CrmClient, query: str = "") -> list[dict[str, Any]]:
    """The portal's lists (first 100) matching ``query``, for the picker."""
    body = _ok(send(client, "POST", "/crm/v3/lists/search", json={"query": query, "count": 100}), "HubSpot lists")
    return [
        {"id": str(item["listId"]), "name": item.get("name", ""), "size": item.get("size"),
         "object": {"0-1": "contacts", "0-2": "companies"}.get(item.get("objectTypeId"), "")}
        for item in body.get("lists") or []
    ]  # fmt: skip


def _hubspot_batch_read(client: CrmClient, obj: str, ids: Sequence[str], fields: Sequence[str]) -> list[Record]:
    found: list[Record] = []
    for start in range(0, len(ids), BATCH_READ):
        chunk = ids[start : start + BATCH_READ]
        body = _ok(
            send(client, "POST", f"/crm/v3/objects/{obj}/batch/read",
                 json={"inputs": [{"id": i} for i in chunk], "properties": _hs_properties(fields)}),
            f"Reading HubSpot {obj}",
        )  # fmt: skip
        found.extend(_hs_record(item, fields) for item in body.get("results") or [])
    return found


def _hubspot_search(
    client: CrmClient, obj: str, fields: Sequence[str], since: str, after: int, among: Sequence[str] | None = None
) -> Iterator[Page]:
    """Records modified after ``since`` (of the ids ``among``, when given: at most ``IDS_PER_SEARCH``)."""
    changed = {"propertyName": HUBSPOT_MODIFIED, "operator": "GT", "value": _hs_ms(since)}
    if among is None:
        groups = [{"filters": [changed]}]
    else:
        groups = [
            {"filters": [changed, {"propertyName": "hs_object_id", "operator": "IN",
                                   "values": list(among[i : i + IN_VALUES])}]}
            for i in range(0, len(among), IN_VALUES)
        ]  # fmt: skip
    while True:
        body = _ok(
            send(client, "POST", f"/crm/v3/objects/{obj}/search",
                 json={"filterGroups": groups, "sorts": [HUBSPOT_MODIFIED],
                       "properties": _hs_properties(fields), "limit": PAGE_HUBSPOT_SEARCH, "after": str(after)}),
            f"Searching HubSpot {obj}",
        )  # fmt: skip
        nxt = ((body.get("paging") or {}).get("next") or {}).get("after")
        after = int(nxt) if nxt else after
        yield Page([_hs_record(item, fields) for item in body.get("results") or []], {"after": after, "done": not nxt})
        if not nxt:
            return


def read_hubspot(
    client: CrmClient, spec: Mapping[str, Any], since: str | None, cursor: Mapping[str, Any]
) -> Iterator[Page]:
    """Pages of a HubSpot list or object, all of it or (with ``since``) what changed since."""
    obj, fields = spec["object"], list(spec.get("fields") or [])
    list_id = spec.get("list_id")
    if list_id is None and since is None:
        after = cursor.get("after") or ""
        while True:
            params = {"limit": PAGE_HUBSPOT_LIST, "properties": ",".join(_hs_properties(fields)), "archived": "false"}
            if after:
                params["after"] = after
            body = _ok(send(client, "GET", f"/crm/v3/objects/{obj}", params=params), f"Reading HubSpot {obj}")
            after = ((body.get("paging") or {}).get("next") or {}).get("after") or ""
            yield Page([_hs_record(item, fields) for item in body.get("results") or []], {"after": after})
            if not after:
                return
    if list_id is None:
        yield from _hubspot_search(client, obj, fields, since or "", int(cursor.get("after") or 0))
        return
    if since is None:  # the whole list: its members a page at a time, each page's records in batches
        after = cursor.get("after") or ""
        while True:
            params = {"limit": PAGE_MEMBERSHIPS, **({"after": after} if after else {})}
            body = _ok(send(client, "GET", f"/crm/v3/lists/{list_id}/memberships", params=params), "HubSpot list")
            results = body.get("results") or []
            ids = [str(m["recordId"]) for m in results]
            after = ((body.get("paging") or {}).get("next") or {}).get("after") or ""
            yield Page(_hubspot_batch_read(client, obj, ids, fields), {"after": after}, _newest_stamp(results))
            if not after:
                return
    # Since the last pull: the members (ids only), then the records changed since among them (a
    # search by id and last-modified, up to IDS_PER_SEARCH ids a search), and the members added
    # since (read even when the record itself did not change).
    members: list[str] = []
    added: list[str] = []
    joined: str | None = None
    after, since_ms = "", int(_hs_ms(since))
    while True:
        params = {"limit": PAGE_MEMBERSHIPS, **({"after": after} if after else {})}
        body = _ok(send(client, "GET", f"/crm/v3/lists/{list_id}/memberships", params=params), "HubSpot list")
        joined = _newest_stamp([*(body.get("results") or []), {"membershipTimestamp": joined}])
        for m in body.get("results") or []:
            members.append(str(m["recordId"]))
            stamp = m.get("membershipTimestamp")
            if stamp and int(_hs_ms(stamp)) > since_ms:
                added.append(str(m["recordId"]))
        after = ((body.get("paging") or {}).get("next") or {}).get("after") or ""
        if not after:
            break
    read: set[str] = set()
    for start in range(0, len(members), IDS_PER_SEARCH):
        for page in _hubspot_search(client, obj, fields, since, 0, members[start : start + IDS_PER_SEARCH]):
            read.update(r.crm_id for r in page.records)
            yield Page(page.records, {})
    rest = [i for i in added if i not in read]
    yield Page(_hubspot_batch_read(client, obj, rest, fields) if rest else [], {}, joined)


def _newest_stamp(members: Sequence[Mapping[str, Any]]) -> str | None:
    stamps = [m["membershipTimestamp"] for m in members if m.get("membershipTimestamp")]
    return max(stamps, key=lambda s: int(_hs_ms(s)), default=None)


# --- Salesforce -----------------------------------------------------------------------------------


def soql_literal(value: str, field_type: str) -> str:
    """A SOQL literal for ``value`` compared with a field of ``field_type``; ValidationFailed when it cannot be."""
    text = str(value).strip()
    if field_type in _SF_NUMERIC:
        if not _NUMBER.match(text):
            raise ValidationFailed(f"“{text[:40]}” is not a number.", fields={"where": ["not a number"]})
        return text
    if field_type in _SF_DATETIME:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationFailed(
                f"“{text[:40]}” is not a date (YYYY-MM-DD or an ISO date and time).", fields={"where": ["not a date"]}
            ) from None
        if field_type == "date":
            return moment.date().isoformat()
        return _sf_time(moment)
    if field_type == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValidationFailed("A checkbox field compares with true or false.", fields={"where": ["true/false"]})
        return text.lower()
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00").replace("+0000", "+00:00"))


def _sf_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>[A-Za-z_]\w*)(?:\s+WHERE\s+(?P<where>.+?))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_NAME = re.compile(r"^[A-Za-z_]\w*$")
_CONDITION = re.compile(
    r"\s*(?P<field>[A-Za-z_]\w*)\s*(?P<op>!=|>=|<=|=|>|<)\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\d{4}-\d{2}-\d{2}(?:T[\d:.]+(?:Z|[+-]\d{2}:?\d{2})?)?|[-+]?\d+(?:\.\d+)?)\s*"
)
_AND = re.compile(r"AND\b", re.IGNORECASE)
SOQL_MAX = 4000


def parse_soql(text: str) -> dict[str, Any]:
    """Read a raw SOQL query into a source's parts (object, fields, conditions), or refuse it.

    Only ``SELECT field, … FROM Object [WHERE field op literal [AND …]]``: one object, plain field
    names (no relationships, functions or subqueries), the fixed operators, quoted strings, numbers
    and dates, no semicolons or comments. The parts are then checked against ``describe`` and the
    query Morket runs is built again from them (``build_soql``), never sent as typed.
    """
    text = str(text or "")
    if len(text) > SOQL_MAX:
        raise ValidationFailed(f"A query is at most {SOQL_MAX:,} characters.", fields={"soql": ["too long"]})
    if ";" in text or "--" in text or "/*" in text:
        raise ValidationFailed("One SELECT only: no semicolons or comments.", fields={"soql": ["one statement"]})
    found = _SOQL.match(text)
    if found is None:
        raise ValidationFailed("Write SELECT field, … FROM Object [WHERE field = 'value' AND …].",
                               fields={"soql": ["not a SELECT"]})  # fmt: skip
    fields = [f.strip() for f in found["fields"].split(",")]
    bad = next((f for f in fields if not _NAME.match(f)), None)
    if bad is not None:
        raise ValidationFailed(f"Select plain field names; “{bad[:60]}” is not one.", fields={"soql": ["field"]})
    where: list[list[str]] = []
    rest, pos = found["where"] or "", 0
    while rest:
        cond = _CONDITION.match(rest, pos)
        if cond is None:
            raise ValidationFailed(
                "Conditions are field, operator (=, !=, <, <=, >, >=) and a quoted text, number or date, "
                f"joined with AND; cannot read “{rest[pos : pos + 40]}”.",
                fields={"soql": ["where"]},
            )
        value = cond["value"]
        if value.startswith("'"):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        where.append([cond["field"], cond["op"], value])
        pos = cond.end()
        if pos >= len(rest):
            break
        joined = _AND.match(rest, pos)
        if joined is None:
            raise ValidationFailed(f"Join conditions with AND; cannot read “{rest[pos:pos + 40]}”.",
                                   fields={"soql": ["where"]})  # fmt: skip
        pos = joined.end()
    return {"object": found["object"], "fields": fields, "where": where}


def build_soql(spec: Mapping[str, Any], types: Mapping[str, str], since: str | None) -> str:
    """SELECT Id, LastModifiedDate and the fields FROM the object [WHERE …] ORDER BY LastModifiedDate.

    ``types`` are the object's described fields (name → type): every name used must be one of them.
    """
    obj = spec["object"]
    fields = [f for f in spec.get("fields") or [] if f not in ("Id", SALESFORCE_MODIFIED)]
    for name in fields:
        if name not in types:
            raise ValidationFailed(f"{obj} has no field “{name[:60]}”.", fields={"fields": [name[:60]]})
    conditions = []
    for triple in spec.get("where") or []:
        name, op, value = triple
        if name not in types:
            raise ValidationFailed(f"{obj} has no field “{str(name)[:60]}”.", fields={"where": [str(name)[:60]]})
        if op not in OPERATORS:
            raise ValidationFailed(f"Unknown comparison “{str(op)[:8]}”.", fields={"where": ["operator"]})
        conditions.append(f"{name} {op} {soql_literal(value, types[name])}")
    if since:
        # Whole seconds in SOQL: from the high-water mark's second on; ``read_salesforce`` drops the
        # records of that second that are not newer than the mark (pulled already).
        conditions.append(f"{SALESFORCE_MODIFIED} >= {_sf_time(_moment(since))}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    selected = ", ".join(["Id", SALESFORCE_MODIFIED, *fields])
    return f"SELECT {selected} FROM {obj}{where} ORDER BY {SALESFORCE_MODIFIED}"  # noqa: S608 - SOQL of described names and escaped literals


def read_salesforce(
    client: CrmClient, soql: str, fields: Sequence[str], limit: int | None = None, since: str | None = None
) -> Iterator[Page]:
    """Pages of a SOQL query, following ``nextRecordsUrl`` until ``done``; records not newer than ``since`` left out."""
    after = _moment(since) if since else None
    query = f"{soql} LIMIT {int(limit)}" if limit else soql
    response = send(client, "GET", "/query", params={"q": query})
    while True:
        body = _ok(response, "The Salesforce query")
        records = [
            Record(crm_id=str(r["Id"]), modified=r.get(SALESFORCE_MODIFIED), values={f: r.get(f) for f in fields})
            for r in body.get("records") or []
        ]
        if after is not None:
            records = [r for r in records if not r.modified or _moment(r.modified) > after]
        nxt = body.get("nextRecordsUrl")
        yield Page(records, {})
        if body.get("done", True) or not nxt:
            return
        if not str(nxt).startswith(f"/services/data/v{SALESFORCE_API_VERSION}/query/"):
            raise CrmUnavailable("Salesforce answered a next-page address Morket does not follow.")
        response = send(client, "GET", nxt)


# --- records deleted in the CRM ---------------------------------------------------------------------

SALESFORCE_DELETED_DAYS = 29  # Salesforce answers getDeleted for the last 30 days only


def hubspot_archived(client: CrmClient, obj: str, since: str | None) -> set[str]:
    """Ids of the object's archived (deleted) records, those archived after ``since`` when given."""
    after, gone = "", set()
    floor = _moment(since) if since else None
    while True:
        params = {"limit": PAGE_HUBSPOT_LIST, "archived": "true", "properties": HUBSPOT_MODIFIED,
                  **({"after": after} if after else {})}  # fmt: skip
        body = _ok(send(client, "GET", f"/crm/v3/objects/{obj}", params=params), f"Reading archived HubSpot {obj}")
        for item in body.get("results") or []:
            stamp = item.get("archivedAt")
            if floor is None or not stamp or _moment(stamp) > floor:
                gone.add(str(item["id"]))
        after = ((body.get("paging") or {}).get("next") or {}).get("after") or ""
        if not after:
            return gone


def hubspot_list_members(client: CrmClient, list_id: str) -> set[str]:
    """Every record id in the list now (members that left it, or were archived, are not)."""
    after, members = "", set()
    while True:
        params = {"limit": PAGE_MEMBERSHIPS, **({"after": after} if after else {})}
        body = _ok(send(client, "GET", f"/crm/v3/lists/{list_id}/memberships", params=params), "HubSpot list")
        members.update(str(m["recordId"]) for m in body.get("results") or [])
        after = ((body.get("paging") or {}).get("next") or {}).get("after") or ""
        if not after:
            return members


def salesforce_deleted(client: CrmClient, obj: str, since: datetime) -> set[str]:
    """Ids of the object's records deleted since ``since`` (Salesforce answers for the last 30 days only:
    the caller compares every key instead when ``since`` is older, see ``salesforce_deleted_covers``)."""
    end = datetime.now(UTC)
    start = max(since - timedelta(seconds=1), end - timedelta(days=SALESFORCE_DELETED_DAYS))
    params = {"start": _sf_time(start), "end": _sf_time(end + timedelta(seconds=1))}
    body = _ok(send(client, "GET", f"/sobjects/{obj}/deleted/", params=params), f"Reading deleted Salesforce {obj}")
    return {str(r["id"]) for r in body.get("deletedRecords") or []}


def salesforce_deleted_covers(since: datetime | None) -> bool:
    """Whether ``getDeleted`` still names every record deleted since ``since`` (None: since ever, never)."""
    return since is not None and since > datetime.now(UTC) - timedelta(days=SALESFORCE_DELETED_DAYS)


def salesforce_ids(client: CrmClient, obj: str) -> set[str]:
    """Every record id of the object now (deleted records are not in a query's answer): the full key
    comparison for deletions older than ``getDeleted`` reaches."""
    soql = f"SELECT Id FROM {obj} ORDER BY Id"  # noqa: S608 - a described object's name
    return {record.crm_id for page in read_salesforce(client, soql, []) for record in page.records}


def read(
    client: CrmClient,
    provider: str,
    spec: Mapping[str, Any],
    types: Mapping[str, str],
    since: str | None,
    cursor: Mapping[str, Any],
) -> Iterator[Page]:
    """The pages of a pull source."""
    if provider == HUBSPOT:
        return read_hubspot(client, spec, since, cursor)
    return read_salesforce(client, build_soql(spec, types, since), list(spec.get("fields") or []), since=since)
