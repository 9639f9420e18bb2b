"""A table's field mapping to a CRM object: which columns fill which fields, matched by which key.

One mapping per table and CRM (``CrmMapping``): the object (HubSpot contacts or companies;
Salesforce Contact, Lead or Account), the match key (a unique or external-id field of that
object, filled from a column or from the Morket row id), the column that receives the CRM's
record id (a text column, created when the mapping is saved without one), and the column-to-field
pairs. Each pair is checked against the field's type: ``error`` refuses the save, ``warn`` is
shown and saved (a text column into a number field fails only on rows that are not numbers).
On first open the mapping is suggested by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from morket.core.audit import record_audit
from morket.core.errors import NotFound, ValidationFailed
from morket.crm.providers import HUBSPOT, get_spec
from morket.crm.push_models import CrmMapping
from morket.crm.service import CrmField, CrmObjectSchema
from morket.extensions import db

if TYPE_CHECKING:
    from morket.core.types import Actor, Workspace
    from morket.tables.models import Column, Table

# The key column id that stands for "the Morket row id" (sent as ``<table id>-<row id>``).
ROW_ID_KEY = 0
MAX_FIELDS = 100
TEXT_LIKE = frozenset({"text", "long_text", "email", "url", "phone", "domain", "single_select", "ai", "lookup"})
NUMERIC = frozenset({"number", "currency", "percent"})
# Column types whose cells cannot be sent as one CRM value.
NOT_SENDABLE = frozenset({"formula"})
# A few CRM field names a column name does not spell the same way.
SYNONYMS = {
    "firstname": ("first name", "first", "given name"),
    "lastname": ("last name", "last", "surname", "family name"),
    "jobtitle": ("title", "job title", "role"),
    "title": ("job title", "role"),
    "company": ("company name", "organization", "organisation", "account"),
    "name": ("company name", "company", "account name"),
    "domain": ("website domain", "company domain"),
    "website": ("url", "website url", "site"),
    "phone": ("phone number", "mobile"),
    "linkedin_url": ("linkedin", "linkedin profile"),
    "numberofemployees": ("employees", "headcount", "employee count", "company size"),
    "num_employees": ("employees", "headcount", "employee count"),
}


def field_kind(crm_field: CrmField) -> str:
    """The CRM field's value kind: email, number, date, bool or text."""
    name, kind = crm_field.name.lower(), crm_field.type.lower()
    if kind == "email" or name == "email":
        return "email"
    if kind in ("number", "int", "double", "currency", "percent", "long"):
        return "number"
    if kind in ("date", "datetime"):
        return "date"
    if kind in ("bool", "boolean", "booleancheckbox"):
        return "bool"
    return "text"


def check_pair(column: Column, crm_field: CrmField) -> tuple[str, str | None]:
    """("ok" | "warn" | "error", why) for sending ``column``'s cells into ``crm_field``."""
    if not crm_field.writable:
        return "error", f"{crm_field.label} is read only in the CRM."
    if column.type in NOT_SENDABLE:
        return "error", f"{column.name} is a formula column; its values cannot be sent."
    kind = field_kind(crm_field)
    ctype = column.type
    if kind == "text":
        return "ok", None
    if kind == "email":
        if ctype in ("email", "text", "long_text", "lookup", "ai", "enrichment"):
            return "ok", None
        return "error", f"{crm_field.label} takes an email address; {column.name} is a {ctype} column."
    if kind == "number":
        if ctype in NUMERIC:
            return "ok", None
        if ctype in TEXT_LIKE or ctype in ("enrichment", "json"):
            return "warn", f"{column.name} is text: rows whose value is not a number will fail in {crm_field.label}."
        return "error", f"{crm_field.label} takes a number; {column.name} is a {ctype} column."
    if kind == "date":
        if ctype in ("date", "datetime"):
            return "ok", None
        if ctype in TEXT_LIKE:
            return "warn", f"{column.name} is text: rows whose value is not a date will fail in {crm_field.label}."
        return "error", f"{crm_field.label} takes a date; {column.name} is a {ctype} column."
    if ctype == "checkbox":
        return "ok", None
    if ctype in TEXT_LIKE:
        return "warn", f"{column.name} is text: only true/false values will be accepted by {crm_field.label}."
    return "error", f"{crm_field.label} takes true or false; {column.name} is a {ctype} column."


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold())


def _matches(column: Column, crm_field: CrmField) -> bool:
    names = {_norm(crm_field.name), _norm(crm_field.label)} | {
        _norm(s) for s in SYNONYMS.get(crm_field.name.lower(), ())
    }
    names.discard("")
    return _norm(column.name) in names


@dataclass
class MappingPlan:
    """A mapping as a form or the API shows it: saved or suggested, with its checks."""

    provider: str
    object: str
    key_field: str
    key_column_id: int | None
    record_id_column_id: int | None
    fields: list[dict[str, Any]]
    saved: bool
    checks: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "object": self.object,
            "key_field": self.key_field,
            "key_column_id": self.key_column_id,
            "record_id_column_id": self.record_id_column_id,
            "fields": self.fields,
            "saved": self.saved,
            "checks": self.checks,
        }


def sendable_columns(table: Table) -> list[Column]:
    """Columns whose cells can be sent to a CRM field."""
    return [c for c in table.live_columns if c.type not in NOT_SENDABLE]


def get_mapping(workspace: Workspace, table: Table, provider: str) -> CrmMapping | None:
    """The table's saved mapping to ``provider``, or None."""
    return db.session.scalars(
        select(CrmMapping).where(
            CrmMapping.workspace_id == workspace.id, CrmMapping.table_id == table.id, CrmMapping.provider == provider
        )
    ).first()


def _schema(objects: Sequence[CrmObjectSchema], name: str) -> CrmObjectSchema:
    for obj in objects:
        if obj.name == name:
            return obj
    raise ValidationFailed(f"Unknown CRM object “{name}”.", fields={"object": ["unknown object"]})


def default_key(provider: str, schema: CrmObjectSchema) -> str:
    """HubSpot contacts match by email; everything else by the first unique / external-id field."""
    keys = [k.name for k in schema.keys]
    if provider == HUBSPOT and schema.name == "contacts" and "email" in keys:
        return "email"
    custom = [k for k in keys if k.lower().startswith("morket_id")]
    return (custom or keys or [""])[0]


def suggest(table: Table, provider: str, schema: CrmObjectSchema) -> MappingPlan:
    """A mapping guessed by name: each writable field that a column's name spells, and the key."""
    columns = sendable_columns(table)
    key_field = default_key(provider, schema)
    key_column_id: int | None = ROW_ID_KEY
    key = next((f for f in schema.fields if f.name == key_field), None)
    if key is not None and field_kind(key) == "email":
        found = next((c for c in columns if c.type == "email"), None) or next(
            (c for c in columns if _matches(c, key)), None
        )
        key_column_id = found.id if found is not None else None
    pairs: list[dict[str, Any]] = []
    used: set[int] = set()
    for crm_field in schema.fields:
        if not crm_field.writable or crm_field.name == key_field:
            continue
        for column in columns:
            if column.id in used or column.id == key_column_id or not _matches(column, crm_field):
                continue
            if check_pair(column, crm_field)[0] == "error":
                continue
            pairs.append({"column_id": column.id, "field": crm_field.name})
            used.add(column.id)
            break
    label = get_spec(provider).label  # type: ignore[union-attr]
    record = next((c for c in table.live_columns if c.name.casefold() == f"{label} id".casefold()), None)
    plan = MappingPlan(provider, schema.name, key_field, key_column_id, record.id if record else None, pairs, False)
    plan.checks = checks_for(table, schema, plan)
    return plan


def checks_for(table: Table, schema: CrmObjectSchema, plan: MappingPlan) -> list[dict[str, Any]]:
    """Every pair's check: ``{"column_id", "field", "level", "message"}``."""
    columns = {c.id: c for c in table.live_columns}
    fields = {f.name: f for f in schema.fields}
    found = []
    for pair in plan.fields:
        column, crm_field = columns.get(pair["column_id"]), fields.get(pair["field"])
        if column is None or crm_field is None:
            level, message = "error", "The column or the CRM field no longer exists."
        else:
            level, message = check_pair(column, crm_field)
        found.append({"column_id": pair["column_id"], "field": pair["field"], "level": level, "message": message})
    return found


def plan_from(mapping: CrmMapping) -> MappingPlan:
    return MappingPlan(
        mapping.provider,
        mapping.object,
        mapping.key_field,
        ROW_ID_KEY if mapping.key_column_id is None else mapping.key_column_id,
        mapping.record_id_column_id,
        list(mapping.fields or []),
        True,
    )


def _int_or_none(raw: Any, name: str) -> int | None:
    if raw in (None, ""):
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{name} must be a column id.", fields={name: ["not a number"]}) from None


def clean_payload(table: Table, schema: CrmObjectSchema, payload: Mapping[str, Any]) -> MappingPlan:
    """Check a submitted mapping against the table and the CRM object; ValidationFailed names the problem."""
    columns = {c.id: c for c in table.live_columns}
    fields = {f.name: f for f in schema.fields}
    key_field = str(payload.get("key_field") or "")
    key = fields.get(key_field)
    if key is None or key not in schema.keys:
        names = ", ".join(k.name for k in schema.keys) or "none"
        raise ValidationFailed(
            f"The match key must be a unique or external-id field of {schema.label} ({names}).",
            fields={"key_field": ["not a key"]},
        )
    key_column_id = _int_or_none(payload.get("key_column_id"), "key_column_id")
    if key_column_id is None:
        raise ValidationFailed("Pick the column whose values match the key.", fields={"key_column_id": ["required"]})
    if key_column_id != ROW_ID_KEY:
        column = columns.get(key_column_id)
        if column is None:
            raise ValidationFailed("The key column is not in this table.", fields={"key_column_id": ["unknown"]})
        level, message = check_pair(column, key)
        if level == "error":
            raise ValidationFailed(message or "That column cannot fill the key.", fields={"key_column_id": [level]})
    elif field_kind(key) == "email":
        raise ValidationFailed("An email key needs an email column.", fields={"key_column_id": ["not an email"]})
    record_id = _int_or_none(payload.get("record_id_column_id"), "record_id_column_id")
    if record_id is not None:
        column = columns.get(record_id)
        if column is None or column.type not in ("text", "long_text"):
            raise ValidationFailed(
                "The record-id column must be a text column of this table.", fields={"record_id_column_id": ["bad"]}
            )
    raw_fields = payload.get("fields") or []
    if not isinstance(raw_fields, list) or len(raw_fields) > MAX_FIELDS:
        raise ValidationFailed(f"Map at most {MAX_FIELDS} fields.", fields={"fields": ["too many"]})
    pairs: list[dict[str, Any]] = []
    seen_fields: set[str] = set()
    for raw in raw_fields:
        if not isinstance(raw, Mapping):
            raise ValidationFailed("Each pair needs a column and a field.", fields={"fields": ["bad pair"]})
        column_id = _int_or_none(raw.get("column_id"), "column_id")
        name = str(raw.get("field") or "")
        if column_id is None or not name:
            continue  # an empty row of the form
        if column_id not in columns:
            raise ValidationFailed("A mapped column is not in this table.", fields={"fields": ["unknown column"]})
        if name not in fields:
            raise ValidationFailed(f"{schema.label} has no field “{name}”.", fields={"fields": ["unknown field"]})
        if name in seen_fields or name == key_field:
            raise ValidationFailed(f"“{fields[name].label}” is mapped twice.", fields={"fields": ["twice"]})
        if record_id is not None and column_id == record_id:
            raise ValidationFailed("The record-id column cannot be sent.", fields={"fields": ["record id column"]})
        seen_fields.add(name)
        pairs.append({"column_id": column_id, "field": name})
    plan = MappingPlan(
        str(payload.get("provider") or ""), schema.name, key_field, key_column_id, record_id, pairs, True
    )
    plan.checks = checks_for(table, schema, plan)
    errors = [c for c in plan.checks if c["level"] == "error"]
    if errors:
        raise ValidationFailed(errors[0]["message"], fields={"fields": [c["message"] for c in errors]})
    return plan


def save_mapping(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    provider: str,
    objects: Sequence[CrmObjectSchema],
    payload: Mapping[str, Any],
) -> tuple[CrmMapping, MappingPlan]:
    """Check and save the table's mapping to ``provider``; a missing record-id column is created."""
    from morket.tables import service as table_service

    spec = get_spec(provider)
    if spec is None:
        raise NotFound("No such CRM.")
    schema = _schema(objects, str(payload.get("object") or ""))
    plan = clean_payload(table, schema, {**payload, "provider": provider})
    if plan.record_id_column_id is None:
        name = f"{spec.label} ID"
        existing = next((c for c in table.live_columns if c.name.casefold() == name.casefold()), None)
        if existing is not None and existing.type in ("text", "long_text"):
            plan.record_id_column_id = existing.id
        else:
            if existing is not None:
                name = f"{spec.label} {schema.label} ID"
            column = table_service.add_column(workspace, actor, table, name, "text")
            plan.record_id_column_id = column.id
    mapping = get_mapping(workspace, table, provider) or CrmMapping(
        workspace_id=workspace.id, table_id=table.id, provider=provider
    )
    mapping.object = plan.object
    mapping.key_field = plan.key_field
    mapping.key_column_id = None if plan.key_column_id == ROW_ID_KEY else plan.key_column_id
    mapping.record_id_column_id = plan.record_id_column_id
    mapping.fields = plan.fields
    mapping.updated_by_id = getattr(actor, "id", None) if actor is not None and hasattr(actor, "email") else None
    db.session.add(mapping)
    db.session.flush()
    record_audit(
        workspace, actor, "crm.mapping_saved", f"table:{table.id}", provider=provider, object=plan.object,
        key=plan.key_field, fields=len(plan.fields),
    )  # fmt: skip
    return mapping, plan


def mapping_for_form(
    workspace: Workspace,
    table: Table,
    provider: str,
    objects: Sequence[CrmObjectSchema],
    object_name: str | None = None,
) -> MappingPlan:
    """The saved mapping (with fresh checks), or a suggestion for ``object_name`` (default: the first object)."""
    saved = get_mapping(workspace, table, provider)
    if saved is not None and (object_name is None or object_name == saved.object):
        plan = plan_from(saved)
        try:
            plan.checks = checks_for(table, _schema(objects, saved.object), plan)
        except ValidationFailed:
            plan.checks = []
        return plan
    if not objects:
        raise ValidationFailed("The CRM has no objects Morket can write.")
    schema = _schema(objects, object_name) if object_name else objects[0]
    return suggest(table, provider, schema)
