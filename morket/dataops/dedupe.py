"""Find duplicate rows on normalised key columns and merge them in one undoable step.

Duplicates are found in SQL over the table's own storage: each key cell is normalised with the
import's normaliser (``morket.dataops.normalise``), rows are grouped by the normalised key, and a
group of two or more rows is a set of duplicates. A row whose key cells are all blank is nobody's
duplicate. Merging keeps one row per group (the first in the table's order, the most complete,
or the one the user picked), fills its empty cells from the others in table order, and deletes
the others; undo puts them back at their positions and restores the kept row's cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import sqlalchemy as sa

from morket.core.db import utcnow
from morket.core.errors import Conflict, ValidationFailed
from morket.core.text import plural
from morket.core.types import Actor, Workspace
from morket.dataops.models import DataRun
from morket.dataops.normalise import MATCH_KINDS, normalised_sql
from morket.extensions import db
from morket.tables import service, storage
from morket.tables.models import Column, Table
from morket.tables.undo import push_undo, register_undo_kind

MAX_KEY_COLUMNS = 5
GROUPS_PER_PAGE = 20
MAX_MERGE_DELETES = service.MAX_DELETE_ROWS
KEEP_RULES = ("first", "complete")
UNDO_KIND = "dedupe.merge"


@dataclass(frozen=True)
class KeyPart:
    """One column of a dedupe key and how its cells are compared."""

    column: Column
    kind: str


class DuplicateRow(NamedTuple):
    """A row of a duplicate group: its id, position in the table's order, cells by column id."""

    id: int
    position: int
    cells: dict[int, Any]
    filled: int


class DuplicatePage(NamedTuple):
    """One page of duplicate groups and the totals over every group."""

    groups: list[list[DuplicateRow]]
    group_count: int
    row_count: int
    page: int
    pages: int


class MergeResult(NamedTuple):
    """What a merge did, and its record."""

    groups: int
    deleted: int
    filled: int
    run: DataRun


def default_kind(column_type: str) -> str:
    """Return how a column of ``column_type`` is compared unless the user says otherwise."""
    return column_type if column_type in MATCH_KINDS else "text"


def is_empty(value: Any) -> bool:
    """Whether a stored cell counts as empty (blank text, no value, no options)."""
    return value is None or value == "" or value == []


def dedupe_key(table: Table, column_ids: Sequence[Any], kinds: Mapping[int, str] | None = None) -> list[KeyPart]:
    """Return the key parts for ``column_ids`` (compared as ``kinds`` says, else by column type)."""
    kinds = kinds or {}
    live = {c.id: c for c in table.live_columns}
    ids: list[int] = []
    for raw in column_ids:
        if isinstance(raw, bool) or not str(raw).isdigit() or int(raw) not in live:
            raise ValidationFailed("Pick columns of this table.", fields={"columns": ["unknown column"]})
        if int(raw) not in ids:
            ids.append(int(raw))
    if not 1 <= len(ids) <= MAX_KEY_COLUMNS:
        raise ValidationFailed(
            f"Pick 1 to {MAX_KEY_COLUMNS} columns to compare.", fields={"columns": ["none or too many"]}
        )
    parts = []
    for column_id in ids:
        column = live[column_id]
        kind = kinds.get(column_id) or default_kind(column.type)
        if kind not in MATCH_KINDS:
            raise ValidationFailed(
                f"Compare {column.name} as one of: {', '.join(MATCH_KINDS)}.", fields={"match": ["unknown"]}
            )
        parts.append(KeyPart(column, kind))
    return parts


def _groups_cte(table: Table, parts: Sequence[KeyPart]) -> tuple[str, str]:
    """Return the CTEs ``keyed`` (id, pos, k0…) and ``dups`` (k0…, n, first_pos), and the key list."""
    exprs = ", ".join(
        f"coalesce({normalised_sql('t.' + p.column.storage_name, p.kind)}, '') AS k{i}" for i, p in enumerate(parts)
    )
    keys = ", ".join(f"k{i}" for i in range(len(parts)))
    some_key = " OR ".join(f"k{i} <> ''" for i in range(len(parts)))
    sql = (
        f"WITH keyed AS (SELECT t.id, t.pos, {exprs} FROM ut.{table.storage_name} AS t), "  # noqa: S608 - generated names
        f"dups AS (SELECT {keys}, count(*) AS n, min(pos) AS first_pos FROM keyed "
        f"WHERE {some_key} GROUP BY {keys} HAVING count(*) > 1) "
    )
    return sql, keys


def _rows(table: Table, row_ids: Sequence[int]) -> dict[int, DuplicateRow]:
    store = storage.storage_for(table)
    rows = store.rows
    found = db.session.execute(
        sa.select(rows.c.id, rows.c.pos, *store.columns.values()).where(rows.c.id.in_(list(row_ids)))
    ).all()
    result = {}
    for r in found:
        cells = dict(zip(store.columns, r[2:], strict=True))
        filled = sum(1 for cid, v in cells.items() if store.types[cid] not in ("formula", "lookup") and not is_empty(v))
        position = storage.position_of(table.pos_base, table.pos_gaps, r[1])
        result[r[0]] = DuplicateRow(r[0], position, cells, filled)
    return result


def find_duplicates(
    workspace: Workspace, actor: Actor, table: Table, parts: Sequence[KeyPart], *, page: int = 1
) -> DuplicatePage:
    """Return one page of duplicate groups (first row's order), with the counts over all groups."""
    service.check_owned(workspace, table)
    ctes, keys = _groups_cte(table, parts)
    totals = ctes + "SELECT count(*), coalesce(sum(n), 0) FROM dups"  # noqa: S608 - generated names
    group_count, row_count = db.session.execute(sa.text(totals)).one()
    pages = max(1, -(-group_count // GROUPS_PER_PAGE))
    page = max(1, min(page, pages))
    shown = (
        f"{ctes}, shown AS (SELECT * FROM dups ORDER BY first_pos LIMIT :limit OFFSET :offset) "  # noqa: S608 - generated names
        f"SELECT shown.first_pos, keyed.id FROM shown JOIN keyed USING ({keys}) ORDER BY shown.first_pos, keyed.pos"
    )
    members = db.session.execute(
        sa.text(shown),
        {"limit": GROUPS_PER_PAGE, "offset": (page - 1) * GROUPS_PER_PAGE},
    ).all()
    rows = _rows(table, [m[1] for m in members])
    groups: dict[int, list[DuplicateRow]] = {}
    for first_pos, row_id in members:
        groups.setdefault(first_pos, []).append(rows[row_id])
    return DuplicatePage(list(groups.values()), int(group_count), int(row_count), page, pages)


def _all_groups(table: Table, parts: Sequence[KeyPart]) -> list[list[int]]:
    ctes, keys = _groups_cte(table, parts)
    grouped = (
        f"{ctes}SELECT array_agg(keyed.id ORDER BY keyed.pos) FROM dups JOIN keyed USING ({keys}) "  # noqa: S608 - generated names
        "GROUP BY dups.first_pos ORDER BY dups.first_pos"
    )
    return [list(r[0]) for r in db.session.execute(sa.text(grouped))]


def _kept(group: list[int], cells: Mapping[int, Mapping[int, Any]], keep: str, chosen: set[int]) -> int:
    picked = [row_id for row_id in group if row_id in chosen]
    if len(picked) > 1:
        raise ValidationFailed("Pick one row to keep in each group.", fields={"keep_row": ["two in one group"]})
    if picked:
        return picked[0]
    if keep == "complete":
        # The most non-empty cells wins; between equals, the first in the table's order.
        return max(group, key=lambda rid: (sum(not is_empty(v) for v in cells[rid].values()), -group.index(rid)))
    return group[0]


def merge_duplicates(
    workspace: Workspace,
    actor: Actor,
    table: Table,
    parts: Sequence[KeyPart],
    *,
    keep: str = "first",
    chosen: Sequence[int] = (),
) -> MergeResult:
    """Merge every duplicate group into one row (``keep`` rule unless a row was chosen) as one undo step."""
    service.check_owned(workspace, table)
    if keep not in KEEP_RULES:
        raise ValidationFailed("Keep the first or the most complete row.", fields={"keep": ["unknown rule"]})
    service.lock_rows(table)
    rows_before = table.row_count
    groups = _all_groups(table, parts)
    if not groups:
        raise Conflict("There are no duplicates on these columns any more.")
    chosen_ids = {int(i) for i in chosen}
    grouped = {rid for group in groups for rid in group}
    if chosen_ids - grouped:
        raise Conflict("The duplicates changed since you looked at them; review them again.")
    doomed_count = sum(len(g) - 1 for g in groups)
    if doomed_count > MAX_MERGE_DELETES:
        raise ValidationFailed(
            f"This merge would delete {doomed_count:,} rows; at most {MAX_MERGE_DELETES:,} at once. "
            "Add a column to the comparison to merge fewer rows at a time.",
            fields={"columns": ["too many duplicates"]},
        )
    fillable = {c.id for c in table.live_columns if c.type not in ("formula", "lookup")}
    current = service.read_cells(table, list(grouped), lock=True)
    cells = {rid: {cid: v for cid, v in row.items() if cid in fillable} for rid, row in current.items()}
    new: dict[int, dict[int, Any]] = {}
    doomed: list[int] = []
    for group in groups:
        kept = _kept(group, cells, keep, chosen_ids)
        others = [rid for rid in group if rid != kept]
        doomed.extend(others)
        fills = {}
        for cid, value in cells[kept].items():
            if is_empty(value):
                donor = next((cells[o][cid] for o in others if not is_empty(cells[o][cid])), None)
                if donor is not None:
                    fills[cid] = donor
        if fills:
            new[kept] = fills
    forward, backward, changes = service.cell_steps(table, current, new)
    gone = service.row_snapshots(table, doomed)
    service.write_cells(workspace, table, changes)
    deleted = service.delete_rows(workspace, actor, table, doomed)
    push_undo(
        workspace, actor, table, UNDO_KIND, {"cells": forward, "delete": gone}, {"insert": gone, "cells": backward}
    )
    message = (
        f"Merged {plural(len(groups), 'group')} of duplicates: "
        f"{plural(deleted, 'row')} deleted, {plural(len(forward), 'empty cell')} filled."
    )
    now = utcnow()
    run = DataRun(
        workspace_id=workspace.id,
        kind="dedupe",
        status="done",
        created_by_id=actor.id,
        table_id=table.id,
        file_name="",
        settings={"columns": [{"column_id": p.column.id, "match": p.kind} for p in parts], "keep": keep},
        rows_in=rows_before,
        rows_out=table.row_count,
        rows_updated=len(new),
        message=message,
        started_at=now,
        finished_at=now,
    )
    db.session.add(run)
    db.session.flush()
    return MergeResult(len(groups), deleted, len(forward), run)


register_undo_kind(UNDO_KIND, service.apply_grid_change, label="the merge of duplicates")
