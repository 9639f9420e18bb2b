"""Lookup columns: bring a field of another table's matching rows into this one, computed in SQL.

A lookup column of table A (``type = "lookup"``) matches A's key column against a key column of
table B in the same workspace. Both keys are compared normalised the way dedupe keys are
(``morket.core.normalise``: emails lower-cased, domains and URLs without scheme, ``www.`` and
path, phones by digits, other text case- and whitespace-folded); an empty key matches nothing.
The column brings back B's field of the first match (by B's row order), every match's field
joined (a separator, at most ``limit`` matches and ``MAX_JOINED_CHARS`` characters) or the count
of matches. No match is an empty cell, or 0 for a count.

Values are materialised as text in the column's storage, like formulas. A fill is two set-based
statements per lookup column: one ``UPDATE … FROM`` joining A to B's matches aggregated per key,
and one that empties the cells whose key no longer matches. Each key column in use has an
expression index on its normalised value (``lk_<table>_<column>_<kind>``, on ``(key, pos)``),
created when a lookup starts using it and dropped when none does, so recomputing a few rows is
index probes on both sides: by A's row ids when A's key cells change, by the changed keys
(before and after the write) when B's rows are added, edited or deleted.

A lookup whose table B, key or field column is gone keeps its settings with ``config.error``
saying why; its cells are emptied and it is skipped until its settings are saved again (or the
column it read is restored).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select

from morket.core.errors import ValidationFailed
from morket.core.normalise import MATCH_KINDS, normalised_sql
from morket.core.types import Workspace
from morket.extensions import db
from morket.tables import storage
from morket.tables.access import list_tables, mark_views_stale
from morket.tables.formula_rows import refresh_formula_rows
from morket.tables.models import USER_SCHEMA, Column, Table

MODES = ("first", "joined", "count")
# Column types whose cells can be keys: their text form does not depend on session settings, so an
# expression index can hold it.
KEY_TYPES = frozenset({"text", "long_text", "email", "url", "phone", "domain", "single_select", "number"})
DEFAULT_SEPARATOR = ", "
MAX_SEPARATOR_CHARS = 10
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_JOINED_CHARS = 2000
# A lookup over at most this many rows (A's plus B's) is filled in the request; a larger one in a job.
INLINE_FILL_ROWS = 50_000
PREVIEW_ROWS = 3


@dataclass(frozen=True)
class Lookup:
    """A lookup column resolved against the tables it reads."""

    column: Column | None  # None for a preview of unsaved settings
    table: Table
    source: Table
    key_id: int
    source_key_id: int
    field_id: int | None
    field_type: str | None
    mode: str
    kind: str
    separator: str
    limit: int


def _refuse(message: str, field: str = "config") -> ValidationFailed:
    return ValidationFailed(message, fields={field: [message]})


def _int(config: Mapping[str, Any], name: str, *, required: bool = True) -> int | None:
    value = config.get(name)
    if value is None or value == "":
        if required:
            raise _refuse(f"A lookup needs {name}.", name)
        return None
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise _refuse(f"{name} must be an id (a whole number).", name)
    return int(value)


def _live(table: Table, column_id: int | None) -> Column | None:
    return next((c for c in table.live_columns if c.id == column_id), None)


def default_kind(key_type: str, source_key_type: str) -> str:
    """How two key columns compare when the settings do not say: the more specific type of the two wins."""
    types = {key_type, source_key_type}
    for kind in ("domain", "email", "phone"):
        if kind in types:
            return kind
    if types == {"url"}:
        return "url"
    return "text"


def source_table(workspace_id: int, table_id: int | None) -> Table | None:
    """Return the workspace's table ``table_id`` (None when it is not there or is another workspace's)."""
    if table_id is None:
        return None
    return db.session.scalars(
        select(Table).where(Table.id == table_id, Table.workspace_id == workspace_id)
    ).one_or_none()


def clean_lookup(table: Table, config: dict[str, Any], column_id: int | None) -> dict[str, Any]:
    """Check a lookup column's settings against the workspace's tables; return them normalised."""
    source = source_table(table.workspace_id, _int(config, "source_table_id"))
    if source is None:
        raise _refuse("The table to look up is not in this workspace.", "source_table_id")
    source_key = _live(source, _int(config, "source_key_column_id"))
    if source_key is None:
        raise _refuse(f"“{source.name}” has no such key column.", "source_key_column_id")
    key = _live(table, _int(config, "key_column_id"))
    if key is None or key.id == column_id:
        raise _refuse("This table has no such key column.", "key_column_id")
    for column, field in ((key, "key_column_id"), (source_key, "source_key_column_id")):
        if column.type not in KEY_TYPES:
            raise _refuse(
                f"“{column.name}” cannot be a key: use a text, email, domain, URL, phone or number column.", field
            )
    mode = config.get("mode", "first")
    if mode not in MODES:
        raise _refuse("Mode is first, joined or count.", "mode")
    field_column = None
    if mode != "count":
        field_column = _live(source, _int(config, "field_column_id"))
        if field_column is None:
            raise _refuse(f"“{source.name}” has no such field column.", "field_column_id")
        if field_column.type == "lookup":
            raise _refuse("A lookup cannot bring back another lookup column.", "field_column_id")
    kind = config.get("match") or default_kind(key.type, source_key.type)
    if kind not in MATCH_KINDS:
        raise _refuse(f"Match is one of {', '.join(MATCH_KINDS)}.", "match")
    separator = config.get("separator", DEFAULT_SEPARATOR)
    if not isinstance(separator, str) or len(separator) > MAX_SEPARATOR_CHARS:
        raise _refuse(f"The separator is at most {MAX_SEPARATOR_CHARS} characters.", "separator")
    limit = config.get("limit", DEFAULT_LIMIT)
    if isinstance(limit, str) and limit.isdigit():
        limit = int(limit)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise _refuse(f"The limit is a whole number from 1 to {MAX_LIMIT}.", "limit")
    return {
        "source_table_id": source.id,
        "source_key_column_id": source_key.id,
        "key_column_id": key.id,
        "field_column_id": field_column.id if field_column is not None else None,
        "mode": mode,
        "match": kind,
        "separator": separator,
        "limit": limit,
        "result_type": "number" if mode == "count" else "text",
    }


def resolve(column: Column) -> Lookup | str:
    """Return the lookup of ``column`` ready to compute, or why it cannot be computed."""
    return _resolve(column.table, column.config or {}, column)


def _resolve(table: Table, config: Mapping[str, Any], column: Column | None) -> Lookup | str:
    source = source_table(table.workspace_id, config.get("source_table_id"))
    if source is None:
        return "The table this lookup reads was deleted."
    key = _live(table, config.get("key_column_id"))
    if key is None:
        return "This table's key column was deleted."
    source_key = _live(source, config.get("source_key_column_id"))
    if source_key is None:
        return f"The key column of “{source.name}” was deleted."
    if key.type not in KEY_TYPES or source_key.type not in KEY_TYPES:
        return "A key column was converted to a type that cannot be a key."
    field_column = None
    if config.get("mode") != "count":
        field_column = _live(source, config.get("field_column_id"))
        if field_column is None:
            return f"The field column of “{source.name}” was deleted."
    return Lookup(
        column=column,
        table=table,
        source=source,
        key_id=key.id,
        source_key_id=source_key.id,
        field_id=field_column.id if field_column is not None else None,
        field_type=field_column.type if field_column is not None else None,
        mode=config.get("mode", "first"),
        kind=config.get("match", "text"),
        separator=config.get("separator", DEFAULT_SEPARATOR),
        limit=int(config.get("limit", DEFAULT_LIMIT)),
    )


FORM_FIELDS = (
    "source_table_id",
    "source_key_column_id",
    "key_column_id",
    "field_column_id",
    "mode",
    "separator",
    "limit",
)
MODE_LABELS = {
    "first": "The first match's field",
    "joined": "Every match's field, joined",
    "count": "The number of matches",
}


def form_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The lookup settings a form sent (ids as typed: ``clean_lookup`` checks them)."""
    config: dict[str, Any] = {}
    for name in FORM_FIELDS:
        raw = values.get(name)
        raw = raw.strip() if isinstance(raw, str) else ""
        if raw:
            config[name] = raw
    if config.get("mode") == "count":
        config.pop("field_column_id", None)
    return config


def settings_choices(workspace: Workspace, table: Table, config: Mapping[str, Any]) -> dict[str, Any]:
    """What the settings fieldset offers: the workspace's tables, this table's keys, the chosen table's columns."""
    tables = list_tables(workspace)
    chosen = str(config.get("source_table_id") or "")
    source = next((t for t in tables if str(t.id) == chosen), None)
    if source is None:
        source = next((t for t in tables if t.id != table.id), None) or (tables[0] if tables else None)
    columns = source.live_columns if source is not None else []
    return {
        "tables": tables,
        "source": source,
        "key_columns": [c for c in table.live_columns if c.type in KEY_TYPES],
        "source_keys": [c for c in columns if c.type in KEY_TYPES],
        "fields": [c for c in columns if c.type != "lookup"],
        "config": {k: str(v) for k, v in config.items() if v is not None and k != "error"},
        "modes": MODE_LABELS,
    }


# --- indexes ---------------------------------------------------------------------------------------


def index_name(table_id: int, column_id: int, kind: str) -> str:
    """The name of the expression index on a key column's normalised value."""
    return f"lk_{int(table_id)}_{int(column_id)}_{kind}"


def _physical(table_id: int) -> str:
    return f"{USER_SCHEMA}.{storage.rows_name(table_id)}"


def _norm(alias: str, column_id: int, kind: str) -> str:
    return normalised_sql(f"{alias}.c_{int(column_id)}", kind)


def _wanted_indexes(lookup: Lookup) -> list[tuple[int, int]]:
    return [(lookup.source.id, lookup.source_key_id), (lookup.table.id, lookup.key_id)]


def ensure_indexes(lookup: Lookup) -> None:
    """Create the expression indexes a lookup reads (on B's key and A's key), if missing."""
    assert lookup.kind in MATCH_KINDS
    for table_id, column_id in _wanted_indexes(lookup):
        expression = normalised_sql(f"c_{int(column_id)}", lookup.kind)
        db.session.execute(
            sa.text(
                f"CREATE INDEX IF NOT EXISTS {index_name(table_id, column_id, lookup.kind)} "
                f"ON {_physical(table_id)} (({expression}), pos)"
            )
        )
    lookup.source.lookup_source = True


def _lookup_columns(workspace_id: int) -> list[Column]:
    return list(
        db.session.scalars(
            select(Column).where(
                Column.workspace_id == workspace_id, Column.type == "lookup", Column.deleted_at.is_(None)
            )
        )
    )


def prune_indexes(workspace_id: int, table_ids: Iterable[int]) -> None:
    """Drop the lookup indexes of ``table_ids`` that no live lookup uses; keep ``lookup_source`` true."""
    live = _lookup_columns(workspace_id)
    wanted: set[str] = set()
    sources: set[int] = set()
    for column in live:
        config = column.config or {}
        kind = config.get("match", "text")
        wanted.add(index_name(config.get("source_table_id", 0), config.get("source_key_column_id", 0), kind))
        wanted.add(index_name(column.table_id, config.get("key_column_id", 0), kind))
        sources.add(int(config.get("source_table_id", 0)))
    for table_id in set(table_ids):
        names = db.session.scalars(
            sa.text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = :schema AND tablename = :table "
                "AND indexname LIKE 'lk\\_%'"
            ),
            {"schema": USER_SCHEMA, "table": storage.rows_name(table_id)},
        ).all()
        for name in names:
            if name not in wanted:
                db.session.execute(sa.text(f'DROP INDEX IF EXISTS {USER_SCHEMA}."{name}"'))
        table = db.session.get(Table, table_id)
        if table is not None and table.workspace_id == workspace_id:
            table.lookup_source = table_id in sources


# --- computing -------------------------------------------------------------------------------------


def _value_sql(lookup: Lookup) -> str:
    field = f"b.c_{int(lookup.field_id or 0)}"
    if lookup.field_type == "enrichment":
        return f"({field} ->> 'value')"
    if lookup.field_type == "multi_select":
        return f"array_to_string({field}, ', ')"
    return f"CAST({field} AS text)"


def fill_statements(lookup: Lookup, scope: str) -> tuple[str, str]:
    """The fill's two statements: the cells whose key matches nothing, then the matched keys' values.

    In that order: on a new (empty) column the first finds nothing to write at the cost of one scan,
    where after the second it would probe B's index for every matched row.

    ``scope`` is ``all``, ``ids`` (A's rows ``:ids``) or ``keys`` (A's and B's normalised keys ``:keys``).
    """
    a, b = _physical(lookup.table.id), _physical(lookup.source.id)
    a_key = _norm("a", lookup.key_id, lookup.kind)
    b_key = _norm("b", lookup.source_key_id, lookup.kind)
    assert lookup.column is not None
    target = f"c_{int(lookup.column.id)}"
    a_scope = b_scope = ""
    if scope == "ids":
        a_scope = " AND a.id = ANY(:ids)"
        inner = _norm("a2", lookup.key_id, lookup.kind)
        b_scope = f" AND {b_key} IN (SELECT {inner} FROM {a} AS a2 WHERE a2.id = ANY(:ids))"  # noqa: S608 - ids and generated names only
    elif scope == "keys":
        a_scope = f" AND {a_key} = ANY(:keys)"
        b_scope = f" AND {b_key} = ANY(:keys)"
    if lookup.mode == "first":
        value = _value_sql(lookup)
        per_key = (
            f"SELECT DISTINCT ON ({b_key}) {b_key} AS k, {value} AS v FROM {b} AS b "  # noqa: S608 - ids and generated names only
            f"WHERE {b_key} <> ''{b_scope} ORDER BY {b_key}, b.pos"
        )
        empty = "NULL"
    elif lookup.mode == "joined":
        value = _value_sql(lookup)
        joined = (
            f"array_to_string((array_agg({value} ORDER BY b.pos) FILTER (WHERE {value} <> ''))"
            f"[1:{int(lookup.limit)}], :sep)"
        )
        per_key = (
            f"SELECT {b_key} AS k, NULLIF(left({joined}, {MAX_JOINED_CHARS}), '') AS v FROM {b} AS b "  # noqa: S608 - ids and generated names only
            f"WHERE {b_key} <> ''{b_scope} GROUP BY 1"
        )
        empty = "NULL"
    else:
        per_key = (
            f"SELECT {b_key} AS k, CAST(count(*) AS text) AS v FROM {b} AS b WHERE {b_key} <> ''{b_scope} GROUP BY 1"  # noqa: S608 - ids and generated names only
        )
        empty = "'0'"
    matched = (
        f"UPDATE {a} AS a SET {target} = m.v FROM ({per_key}) AS m "  # noqa: S608 - ids and generated names only
        f"WHERE {a_key} = m.k AND a.{target} IS DISTINCT FROM m.v{a_scope}"
    )
    if scope == "keys":  # rows of A found by key: their ids go on to A's formulas
        matched += " RETURNING a.id"
    unmatched = (
        f"UPDATE {a} AS a SET {target} = {empty} WHERE a.{target} IS DISTINCT FROM {empty}{a_scope} "  # noqa: S608 - ids and generated names only
        f"AND NOT EXISTS (SELECT 1 FROM {b} AS b WHERE {b_key} = {a_key} AND {b_key} <> '')"
    )
    if scope == "keys":
        unmatched += " RETURNING a.id"
    return unmatched, matched


def fill_lookup(
    workspace: Workspace, lookup: Lookup, *, ids: Sequence[int] | None = None, keys: Iterable[str] | None = None
) -> int:
    """Recompute a lookup's cells: every row, A's rows ``ids``, or A's rows whose key is in ``keys``.

    Return the cells written (only cells whose value changes are written).
    """
    params: dict[str, Any] = {"sep": lookup.separator}
    scope = "all"
    if ids is not None:
        scope, params["ids"] = "ids", [int(i) for i in ids]
        if not params["ids"]:
            return 0
    elif keys is not None:
        scope, params["keys"] = "keys", sorted({k for k in keys if k})
        if not params["keys"]:
            return 0
    written = 0
    touched: list[int] = []
    for statement in fill_statements(lookup, scope):
        result = db.session.execute(sa.text(statement), params)
        if scope == "keys":
            touched += result.scalars().all()
        else:
            written += result.rowcount or 0
    written += len(touched)
    if written and lookup.column is not None:
        mark_views_stale(workspace, lookup.table, {lookup.column.id})
        # A change that came from the other table: this table's formulas that read the lookup follow.
        if touched:
            refresh_formula_rows(workspace, lookup.table, touched, {lookup.column.id})
    return written


def fill_column(workspace: Workspace, column: Column) -> int:
    """Fill every cell of a lookup column (its indexes made first); a broken lookup gets its error."""
    found = resolve(column)
    if isinstance(found, str):
        return mark_broken(workspace, column, found)
    if (column.config or {}).get("error"):
        column.config = {k: v for k, v in column.config.items() if k != "error"}
    ensure_indexes(found)
    return fill_lookup(workspace, found)


def mark_broken(workspace: Workspace, column: Column, reason: str) -> int:
    """Record why a lookup cannot be computed and empty its cells."""
    if (column.config or {}).get("error") != reason:
        column.config = {**(column.config or {}), "error": reason}
    target = f"c_{int(column.id)}"
    written = (
        db.session.execute(
            sa.text(f"UPDATE {_physical(column.table_id)} SET {target} = NULL WHERE {target} IS NOT NULL")  # noqa: S608 - ids and generated names only
        ).rowcount
        or 0
    )
    if written:
        mark_views_stale(workspace, column.table, {column.id})
    return written


def is_large(column: Column) -> bool:
    """Whether filling this lookup should run in a job rather than in the request."""
    source = source_table(column.workspace_id, (column.config or {}).get("source_table_id"))
    return column.table.row_count + (source.row_count if source is not None else 0) > INLINE_FILL_ROWS


def preview(table: Table, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The first ``PREVIEW_ROWS`` rows' key and lookup result for unsaved settings (checked first)."""
    cleaned = clean_lookup(table, dict(config), None)
    source = source_table(table.workspace_id, cleaned["source_table_id"])
    assert source is not None
    found = _resolve(table, cleaned, None)
    if isinstance(found, str):
        raise _refuse(found)
    a_key = _norm("a", found.key_id, found.kind)
    b_key = _norm("b", found.source_key_id, found.kind)
    if found.mode == "count":
        value = "CAST(count(*) AS text)"
        inner = f"SELECT {value} FROM {_physical(source.id)} AS b WHERE {b_key} = {a_key} AND {b_key} <> ''"  # noqa: S608 - ids and generated names only
    elif found.mode == "first":
        inner = (
            f"SELECT {_value_sql(found)} FROM {_physical(source.id)} AS b WHERE {b_key} = {a_key} "  # noqa: S608 - ids and generated names only
            f"AND {b_key} <> '' ORDER BY b.pos LIMIT 1"
        )
    else:
        inner = (
            f"SELECT NULLIF(left(array_to_string((array_agg(v ORDER BY pos))[1:{int(found.limit)}], :sep), "  # noqa: S608 - ids and generated names only
            f"{MAX_JOINED_CHARS}), '') FROM (SELECT {_value_sql(found)} AS v, b.pos FROM {_physical(source.id)} AS b "
            f"WHERE {b_key} = {a_key} AND {b_key} <> '') AS x WHERE v <> ''"
        )
    rows = db.session.execute(
        sa.text(
            f"SELECT CAST(a.c_{int(found.key_id)} AS text) AS key, ({inner}) AS value "  # noqa: S608 - ids and generated names only
            f"FROM {_physical(table.id)} AS a ORDER BY a.pos LIMIT {PREVIEW_ROWS}"
        ),
        {"sep": found.separator},
    ).all()
    empty = "0" if found.mode == "count" else None
    return [{"key": r.key, "value": r.value if r.value is not None else empty} for r in rows]


# --- keeping lookups current ------------------------------------------------------------------------


def lookup_ids(table: Table) -> set[int]:
    """The ids of ``table``'s live lookup columns (a formula reading one recomputes with it)."""
    return {c.id for c in table.live_columns if c.type == "lookup"}


def _lookups_in(table: Table) -> list[Column]:
    return [c for c in table.live_columns if c.type == "lookup" and not (c.config or {}).get("error")]


def readers_of(table: Table) -> list[Column]:
    """The live lookup columns (of any table of the workspace) that read ``table``."""
    if not table.lookup_source:
        return []
    source_id = sa.cast(Column.config["source_table_id"].astext, sa.BigInteger)
    return list(
        db.session.scalars(
            select(Column).where(
                Column.workspace_id == table.workspace_id,
                Column.type == "lookup",
                Column.deleted_at.is_(None),
                source_id == table.id,
            )
        )
    )


Keys = dict[int, set[str]]


def _reads(column: Column, changed: set[int] | None) -> bool:
    config = column.config or {}
    if changed is None:
        return True
    used = {config.get("source_key_column_id"), config.get("field_column_id")}
    return bool(used & changed)


def source_keys(table: Table, row_ids: Sequence[int], changed: Iterable[int] | None = None) -> Keys:
    """The normalised keys, per reading lookup column, of rows of ``table`` (call before and after a write)."""
    if not row_ids or not table.lookup_source:
        return {}
    changed_set = None if changed is None else set(changed)
    keys: Keys = {}
    for column in readers_of(table):
        config = column.config or {}
        if config.get("error") or not _reads(column, changed_set):
            continue
        key_id = config.get("source_key_column_id")
        if _live(table, key_id) is None:
            continue
        expression = _norm("b", key_id, config.get("match", "text"))
        found = db.session.scalars(
            sa.text(f"SELECT DISTINCT {expression} FROM {_physical(table.id)} AS b WHERE b.id = ANY(:ids)"),  # noqa: S608 - ids and generated names only
            {"ids": [int(i) for i in row_ids]},
        ).all()
        keys[column.id] = {k for k in found if k}
    return keys


def refresh_after_write(
    workspace: Workspace,
    table: Table,
    row_ids: Sequence[int],
    changed: Iterable[int] | None = None,
    before: Keys | None = None,
) -> int:
    """Recompute the lookups a write of ``row_ids`` of ``table`` affects; return the cells written.

    Lookups of ``table`` itself recompute those rows when their key column was written (or rows
    were added: ``changed`` None). Lookups that read ``table`` recompute the rows of their own
    table whose key was among ``before`` (the keys the written rows had, from ``source_keys``) or
    is among the keys the rows have now.
    """
    changed_set = None if changed is None else set(changed)
    written = 0
    if row_ids:
        for column in _lookups_in(table):
            key_id = (column.config or {}).get("key_column_id")
            if changed_set is not None and key_id not in changed_set:
                continue
            found = resolve(column)
            if isinstance(found, Lookup) and _still_there(found.source.id):
                written += fill_lookup(workspace, found, ids=row_ids)
    if not table.lookup_source:
        return written
    after = source_keys(table, row_ids, changed_set) if row_ids else {}
    todo = {cid: (before or {}).get(cid, set()) | after.get(cid, set()) for cid in set(before or {}) | set(after)}
    for column in readers_of(table):
        keys = todo.get(column.id)
        if not keys:
            continue
        found = resolve(column)
        if isinstance(found, Lookup) and _still_there(column.table_id):
            written += fill_lookup(workspace, found, keys=keys)
    return written


def _still_there(table_id: int) -> bool:
    """Take the other table's row lock ``FOR SHARE`` (as its own writers do) before its rows are read or
    written: a delete of it in progress is waited for, and then the table is gone and skipped."""
    return db.session.scalar(select(Table.id).where(Table.id == table_id).with_for_update(read=True)) is not None


def refresh_all(workspace: Workspace, table: Table) -> int:
    """Recompute every lookup of ``table`` and every lookup that reads it (after a bulk load)."""
    written = 0
    for column in _lookups_in(table):
        written += fill_column(workspace, column)
    for column in readers_of(table):
        if column.table_id != table.id and not (column.config or {}).get("error"):
            written += fill_column(workspace, column)
    return written


def sources_changed(workspace: Workspace, table: Table) -> None:
    """After a column of ``table`` was deleted or restored: break or mend the lookups that read it or live in it."""
    columns = {c.id: c for c in [*readers_of(table), *(c for c in table.live_columns if c.type == "lookup")]}
    if not columns:
        return
    for column in columns.values():
        found = resolve(column)
        if isinstance(found, str):
            mark_broken(workspace, column, found)
        elif (column.config or {}).get("error"):
            fill_column(workspace, column)
        else:
            ensure_indexes(found)  # a retyped key column lost its index with its old storage
    prune_indexes(workspace.id, {table.id} | {c.table_id for c in columns.values()})


def table_deleted(workspace: Workspace, table_id: int) -> None:
    """After table ``table_id`` was deleted: the lookups that read it are broken, with the reason."""
    source_id = sa.cast(Column.config["source_table_id"].astext, sa.BigInteger)
    readers = db.session.scalars(
        select(Column).where(
            Column.workspace_id == workspace.id,
            Column.type == "lookup",
            Column.deleted_at.is_(None),
            source_id == table_id,
        )
    ).all()
    for column in readers:
        if column.table_id != table_id:
            mark_broken(workspace, column, "The table this lookup reads was deleted.")
    prune_indexes(workspace.id, {c.table_id for c in readers if c.table_id != table_id})
