"""Grid edits a user can undo: one cell, pasted blocks, fill down, clear, row inserts and deletes.

Every function takes ``workspace`` and ``actor``, flushes but never commits, and records one undo
step (see ``morket.tables.undo``). Between two users the last write wins per cell; each sees the
other's change on the next window fetch (the grid reads cells live through its window query).

Undo payloads share one shape, applied by ``apply_grid_change`` in this order:

- ``insert``: row snapshots ``{"id", "position", "cells": {column_id: value}}`` put back at their
  positions in the default order (with their original ids, so later steps still find them);
- ``cells``: ``[row_id, column_id, value, expect]`` set ``value`` where the cell still holds ``expect``;
- ``delete``: row snapshots removed where every cell still holds the snapshot's value.

Anything someone else changed since is left alone and reported with ``UndoConflict``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import select

from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import hooks, lookups, storage
from morket.tables.access import check_owned, find_column, lock_rows, mark_views_stale, next_pos
from morket.tables.cells import COMPUTED_TYPES, CellError, parse_cell
from morket.tables.formula_rows import refresh_formula_rows
from morket.tables.models import Column, Table, View
from morket.tables.rows import MAX_DELETE_ROWS, delete_rows, insert_rows, update_cell
from morket.tables.undo import UndoConflict, dump_value, load_value, push_undo, register_undo_kind
from morket.tables.windows import MAX_WINDOW, read_window

MAX_ADD_ROWS = 1000
MAX_SELECTION_ROWS = 10_000
MAX_SELECTION_CELLS = 100_000
MAX_PASTE_CHARS = 5_000_000


class CellProblem(NamedTuple):
    """A pasted cell that was not saved: where (row offset in the block, column) and why."""

    row: int
    column: str
    message: str


class PasteResult(NamedTuple):
    """What a paste changed: cells written, rows added and the cells refused."""

    changed: int
    added_rows: int
    problems: list[CellProblem]


def visible_columns(table: Table, view: View | None) -> list[Column]:
    """Return the live columns the view shows, in display order (what a grid selection spans)."""
    hidden = set(view.hidden_column_ids or []) if view is not None else set()
    return [c for c in table.live_columns if c.id not in hidden and not c.hidden]


# --- reading rows ----------------------------------------------------------------------------------


def read_cells(table: Table, row_ids: Sequence[int], *, lock: bool = False) -> dict[int, dict[int, Any]]:
    """Return {row_id: {column_id: stored value}} of every live column for the rows that exist.

    One statement; ``lock`` takes the rows' locks (``FOR UPDATE``) for a read-modify-write.
    """
    if not row_ids:
        return {}
    store = storage.storage_for(table)
    query = select(store.rows.c.id, *store.columns.values()).where(store.rows.c.id.in_(list(set(row_ids))))
    if lock:
        query = query.with_for_update()
    ids = list(store.columns)
    return {r[0]: dict(zip(ids, r[1:], strict=True)) for r in db.session.execute(query)}


def row_snapshots(table: Table, row_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Return the rows as undo snapshots (position in the default order, every live cell), by position.

    Call under ``lock_rows`` so that the table's position keys are current.
    """
    store = storage.storage_for(table)
    rows = store.rows
    found = db.session.execute(
        select(rows.c.id, rows.c.pos, *store.columns.values())
        .where(rows.c.id.in_(list(set(row_ids))))
        .order_by(rows.c.pos)
    ).all()
    types = store.types
    return [
        {
            "id": r[0],
            "position": storage.position_of(table.pos_base, table.pos_gaps, r[1]),
            "cells": {str(cid): dump_value(types[cid], v) for cid, v in zip(store.columns, r[2:], strict=True)},
        }
        for r in found
    ]


def _view_rows(
    workspace: Workspace, actor: Actor, table: Table, view: View | None, start: int, count: int
) -> list[int]:
    """Return the ids of the rows at positions [start, start + count) of the view."""
    ids: list[int] = []
    while len(ids) < count:
        want = min(MAX_WINDOW, count - len(ids))
        chunk = read_window(workspace, actor, table, view, start + len(ids), want)
        ids.extend(r.id for r in chunk)
        if len(chunk) < want:
            break
    return ids


def rows_at(
    workspace: Workspace, actor: Actor, table: Table, view: View | None, start: int, count: int, first_row_id: int
) -> list[int]:
    """Return the view's row ids from ``start``, checking that the first is the row the user pointed at."""
    check_owned(workspace, table, view)
    if not 1 <= count <= MAX_SELECTION_ROWS:
        raise ValidationFailed(f"Select 1 to {MAX_SELECTION_ROWS:,} rows.", fields={"rows": ["too many"]})
    ids = _view_rows(workspace, actor, table, view, start, count)
    if not ids or ids[0] != first_row_id:
        raise Conflict("The rows moved since this page was loaded (someone added, deleted or re-sorted); try again.")
    return ids


# --- writing cells ---------------------------------------------------------------------------------


def write_cells(workspace: Workspace, table: Table, changes: Mapping[int, Mapping[int, Any]]) -> None:
    """Write {row_id: {column_id: stored value}}, one executemany per set of columns.

    Values are stored values (parsed already). Recomputes the rows' formulas, marks stale the views
    ordered on the columns written and hands the rows to the rows-changed listeners (``hooks``). Record the
    step with ``cell_steps`` and ``push_undo`` for the user to undo it.
    """
    if not changes:
        return
    store = storage.storage_for(table)
    changed = {cid for cells in changes.values() for cid in cells}
    before = lookups.source_keys(table, list(changes), changed)
    groups: dict[tuple[int, ...], list[dict[str, Any]]] = defaultdict(list)
    for row_id, cells in changes.items():
        key = tuple(sorted(cells))
        groups[key].append({"_row": row_id, **{f"v_{cid}": cells[cid] for cid in key}})
    for key, params in groups.items():
        statement = (
            sa.update(store.rows)
            .where(store.rows.c.id == sa.bindparam("_row"))
            .values({store.columns[cid].name: sa.bindparam(f"v_{cid}", type_=store.columns[cid].type) for cid in key})
        )
        db.session.execute(statement, params)
    mark_views_stale(workspace, table, changed)
    _refresh_formulas(workspace, table, list(changes), changed, before)
    hooks.rows_changed(table, list(changes))
    hooks.row_events(table, "updated", list(changes))


def _refresh_formulas(
    workspace: Workspace,
    table: Table,
    row_ids: Sequence[int],
    changed: set[int] | None,
    before: lookups.Keys | None = None,
) -> None:
    """Recompute the lookup and formula cells of rows whose inputs were written by paste, fill, clear, undo or add.

    Lookups first (this table's, and those of other tables that read it), since a formula may read a lookup.
    """
    lookups.refresh_after_write(workspace, table, row_ids, changed, before)
    if changed is not None:
        changed = changed | lookups.lookup_ids(table)
    refresh_formula_rows(workspace, table, row_ids, changed)


def cell_steps(
    table: Table, old: Mapping[int, Mapping[int, Any]], new: Mapping[int, Mapping[int, Any]]
) -> tuple[list[list[Any]], list[list[Any]], dict[int, dict[int, Any]]]:
    """Return the undo step's (forward, backward) cell lists for the cells that change, and the changes to write.

    ``old`` is what ``read_cells`` returned; ``new`` the values wanted ({row_id: {column_id: value}}).
    Each list item is ``[row_id, column_id, value, expect]``, the undo payload's ``cells`` shape.
    """
    types = storage.storage_for(table).types
    forward: list[list[Any]] = []
    backward: list[list[Any]] = []
    changes: dict[int, dict[int, Any]] = {}
    for row_id, cells in new.items():
        for cid, value in cells.items():
            before = old[row_id][cid]
            was, now = dump_value(types[cid], before), dump_value(types[cid], value)
            if was == now:
                continue
            forward.append([row_id, cid, now, was])
            backward.append([row_id, cid, was, now])
            changes.setdefault(row_id, {})[cid] = value
    return forward, backward, changes


def save_cell(workspace: Workspace, actor: Actor, table: Table, row_id: int, column_id: int, raw: Any) -> Any:
    """Set one cell from what the user typed and return the stored value; bad input raises ValidationFailed."""
    check_owned(workspace, table)
    column = find_column(table, column_id)
    old = read_cells(table, [row_id], lock=True)
    if row_id not in old:
        raise NotFound("That row no longer exists.")
    before = old[row_id][column.id]
    value = update_cell(workspace, actor, table, row_id, column.id, raw)
    hooks.rows_changed(table, [row_id])
    was, now = dump_value(column.type, before), dump_value(column.type, value)
    if was != now:
        push_undo(
            workspace,
            actor,
            table,
            "cell",
            {"cells": [[row_id, column.id, now, was]]},
            {"cells": [[row_id, column.id, was, now]]},
        )
    return value


def _selection(table: Table, view: View | None, row_ids: Sequence[int], column_ids: Sequence[int]) -> list[Column]:
    shown = {c.id: c for c in visible_columns(table, view)}
    columns = [shown[c] for c in dict.fromkeys(column_ids) if c in shown]
    if not columns or len(columns) != len(set(column_ids)):
        raise ValidationFailed("Select cells of columns this view shows.", fields={"columns": ["not in this view"]})
    if not 1 <= len(row_ids) <= MAX_SELECTION_ROWS or len(row_ids) * len(columns) > MAX_SELECTION_CELLS:
        raise ValidationFailed(
            f"Select 1 to {MAX_SELECTION_ROWS:,} rows and at most {MAX_SELECTION_CELLS:,} cells.",
            fields={"rows": ["none or too many"]},
        )
    return columns


def fill_down(
    workspace: Workspace,
    actor: Actor,
    table: Table,
    view: View | None,
    row_ids: Sequence[int],
    column_ids: Sequence[int],
) -> int:
    """Copy the first row's cell of each selected column into the other rows; return the cells changed."""
    check_owned(workspace, table, view)
    columns = _selection(table, view, row_ids, column_ids)
    computed = [c.name for c in columns if c.type in COMPUTED_TYPES]
    if computed:
        raise ValidationFailed(
            f"{computed[0]} is computed; its cells cannot be filled.", fields={"columns": ["computed"]}
        )
    old = read_cells(table, row_ids, lock=True)
    if row_ids[0] not in old:
        raise NotFound("That row no longer exists.")
    top = old[row_ids[0]]
    new = {rid: {c.id: top[c.id] for c in columns} for rid in row_ids[1:] if rid in old}
    return _record_cells(workspace, actor, table, "fill", old, new)


def clear_cells(
    workspace: Workspace,
    actor: Actor,
    table: Table,
    view: View | None,
    row_ids: Sequence[int],
    column_ids: Sequence[int],
) -> int:
    """Empty the selected cells (computed columns are skipped); return the cells changed."""
    check_owned(workspace, table, view)
    columns = [c for c in _selection(table, view, row_ids, column_ids) if c.type not in COMPUTED_TYPES]
    old = read_cells(table, row_ids, lock=True)
    new = {rid: {c.id: None for c in columns} for rid in row_ids if rid in old}
    return _record_cells(workspace, actor, table, "clear", old, new)


def _record_cells(
    workspace: Workspace,
    actor: Actor,
    table: Table,
    kind: str,
    old: Mapping[int, Mapping[int, Any]],
    new: Mapping[int, Mapping[int, Any]],
) -> int:
    forward, backward, changes = cell_steps(table, old, new)
    if not forward:
        return 0
    write_cells(workspace, table, changes)
    push_undo(workspace, actor, table, kind, {"cells": forward}, {"cells": backward})
    return len(forward)


# --- paste -----------------------------------------------------------------------------------------


def parse_tsv(text: str) -> list[list[str]]:
    """Parse tab-separated text as Excel and Google Sheets copy it (quoted cells may hold tabs, newlines, "")."""
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith(("\n", "\r")):
        text = text[:-1]
    rows: list[list[str]] = [[]]
    field: list[str] = []
    i, n = 0, len(text)
    at_start = True
    while i < n:
        ch = text[i]
        if at_start and ch == '"':
            close = _closing_quote(text, i + 1)
            if close is not None:
                field.append(text[i + 1 : close].replace('""', '"'))
                i = close + 1
                at_start = False
                continue
        at_start = False
        if ch == "\t":
            rows[-1].append("".join(field))
            field, at_start = [], True
        elif ch in "\r\n":
            rows[-1].append("".join(field))
            rows.append([])
            field, at_start = [], True
            if ch == "\r" and i + 1 < n and text[i + 1] == "\n":
                i += 1
        else:
            field.append(ch)
        i += 1
    rows[-1].append("".join(field))
    return rows


def _closing_quote(text: str, i: int) -> int | None:
    """Return the index of the quote closing a quoted cell that opened before ``i``, if it is well formed."""
    n = len(text)
    while i < n:
        if text[i] == '"':
            if i + 1 < n and text[i + 1] == '"':
                i += 2
                continue
            return i if i + 1 == n or text[i + 1] in "\t\r\n" else None
        i += 1
    return None


def paste_block(
    workspace: Workspace,
    actor: Actor,
    table: Table,
    view: View | None,
    row_ids: Sequence[int],
    column_id: int,
    block: Sequence[Sequence[str]],
) -> PasteResult:
    """Paste a parsed TSV block into ``row_ids`` from ``column_id`` rightwards, adding rows for the rest.

    Refused cells keep their value and are returned with their reason; the rest is saved.
    """
    check_owned(workspace, table, view)
    if not block:
        raise ValidationFailed("There is nothing to paste.", fields={"text": ["empty"]})
    shown = visible_columns(table, view)
    index = next((i for i, c in enumerate(shown) if c.id == column_id), None)
    if index is None:
        raise ValidationFailed("Paste into a column this view shows.", fields={"column": ["not in this view"]})
    width = max(len(r) for r in block)
    if len(block) > MAX_SELECTION_ROWS or len(block) * width > MAX_SELECTION_CELLS:
        raise ValidationFailed(
            f"Paste at most {MAX_SELECTION_ROWS:,} rows and {MAX_SELECTION_CELLS:,} cells.",
            fields={"text": ["too big"]},
        )
    columns = shown[index : index + width]
    problems: list[CellProblem] = []
    if width > len(columns):
        problems.append(
            CellProblem(0, "", f"{width - len(columns)} pasted column(s) ran past the last column; they were left out.")
        )
    parsed: list[dict[int, Any]] = []
    for r, values in enumerate(block):
        cells: dict[int, Any] = {}
        for column, raw in zip(columns, values, strict=False):
            try:
                cells[column.id] = parse_cell(column.type, column.config, raw)
            except CellError as exc:
                problems.append(CellProblem(r, column.name, str(exc)))
        parsed.append(cells)
    old = read_cells(table, row_ids, lock=True)
    ids = [rid for rid in row_ids[: len(block)] if rid in old]
    forward, backward, changes = cell_steps(table, old, dict(zip(ids, parsed, strict=False)))
    write_cells(workspace, table, changes)
    extra = parsed[len(ids) :]
    added: list[dict[str, Any]] = []
    if extra:
        new_ids = insert_rows(workspace, actor, table, [{} for _ in extra])
        write_cells(workspace, table, {rid: cells for rid, cells in zip(new_ids, extra, strict=True) if cells})
        added = row_snapshots(table, new_ids)
    if forward or added:
        push_undo(
            workspace,
            actor,
            table,
            "paste",
            {"insert": added, "cells": forward},
            {"cells": backward, "delete": added},
        )
    return PasteResult(len(forward) + sum(len(c) for c in extra), len(added), problems)


# --- rows ------------------------------------------------------------------------------------------


def _open_gap(table: Table, position: int, count: int) -> int:
    """Make room for ``count`` rows at ``position`` of the default order; return the first free ``pos``.

    Call under ``lock_rows``. Like a compaction, it moves the shorter side: the rows (and
    remembered gaps) before the position move down, or those from it on move up.
    """
    size = table.row_count
    position = max(0, min(position, size))
    if position == size:
        return next_pos(table)
    key = storage.key_of(table.pos_base, table.pos_gaps, position)
    free = set(range(key - count, key))
    if free <= set(table.pos_gaps):
        # The rows' own gaps are still remembered (undoing a delete): they go back there, nothing moves.
        table.pos_gaps = [g for g in table.pos_gaps if g not in free]
        return key - count
    rows = storage.storage_for(table).rows
    if position < size - position:
        db.session.execute(sa.update(rows).where(rows.c.pos < key).values(pos=rows.c.pos - count))
        table.pos_gaps = [g - count if g < key else g for g in table.pos_gaps]
        table.pos_base -= count
        return key - count
    db.session.execute(sa.update(rows).where(rows.c.pos >= key).values(pos=rows.c.pos + count))
    table.pos_gaps = [g + count if g >= key else g for g in table.pos_gaps]
    return key


def _insert_with_ids(store: storage.Storage) -> sa.TextClause:
    """Return an INSERT that keeps the given row ids (the identity column is GENERATED ALWAYS)."""
    names = ["id", "pos", *(c.name for c in store.columns.values())]
    typed = [sa.bindparam("id", type_=sa.BigInteger), sa.bindparam("pos", type_=sa.BigInteger)]
    typed += [sa.bindparam(c.name, type_=c.type) for c in store.columns.values()]
    return sa.text(
        f"INSERT INTO {store.rows.fullname} ({', '.join(names)}) OVERRIDING SYSTEM VALUE "  # noqa: S608 - generated names
        f"VALUES ({', '.join(':' + n for n in names)})"
    ).bindparams(*typed)


def _insert_snapshots(workspace: Workspace, table: Table, snapshots: Sequence[Mapping[str, Any]]) -> list[int]:
    """Put rows back at their positions with their ids; return the ids that already existed (skipped)."""
    store = storage.storage_for(table)
    present = set(
        db.session.scalars(select(store.rows.c.id).where(store.rows.c.id.in_([int(s["id"]) for s in snapshots])))
    )
    todo = sorted((s for s in snapshots if int(s["id"]) not in present), key=lambda s: int(s["position"]))
    lock_rows(table)
    runs: list[list[Mapping[str, Any]]] = []
    for snap in todo:
        if runs and int(snap["position"]) == int(runs[-1][-1]["position"]) + 1:
            runs[-1].append(snap)
        else:
            runs.append([snap])
    for run in runs:
        pos = _open_gap(table, int(run[0]["position"]), len(run))
        table.row_count += len(run)
        params = []
        for offset, snap in enumerate(run):
            cells = {int(k): v for k, v in (snap.get("cells") or {}).items()}
            values = {col.name: load_value(store.types[cid], cells.get(cid)) for cid, col in store.columns.items()}
            params.append({"id": int(snap["id"]), "pos": pos + offset, **values})
        db.session.execute(_insert_with_ids(store), params)
    mark_views_stale(workspace, table, None)
    _refresh_formulas(workspace, table, [int(s["id"]) for s in todo], None)
    db.session.flush()
    return sorted(present)


def add_rows(
    workspace: Workspace, actor: Actor, table: Table, count: int = 1, *, after_row_id: int | None = None
) -> list[int]:
    """Add ``count`` empty rows at the end, or right after a row in the default order; return their ids."""
    check_owned(workspace, table)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_ADD_ROWS:
        raise ValidationFailed(f"Add 1 to {MAX_ADD_ROWS:,} rows at a time.", fields={"count": [f"1 to {MAX_ADD_ROWS}"]})
    lock_rows(table)
    if after_row_id is None:
        position = table.row_count
    else:
        anchor = row_snapshots(table, [after_row_id])
        if not anchor:
            raise NotFound("That row no longer exists.")
        position = anchor[0]["position"] + 1
    pos = _open_gap(table, position, count)
    rows = storage.storage_for(table).rows
    ids = list(
        db.session.execute(
            sa.insert(rows).returning(rows.c.id, sort_by_parameter_order=True),
            [{"pos": pos + i} for i in range(count)],
        ).scalars()
    )
    table.row_count += count
    mark_views_stale(workspace, table, None)
    _refresh_formulas(workspace, table, ids, None)
    hooks.rows_changed(table, ids)
    hooks.row_events(table, "created", ids)
    db.session.flush()
    added = row_snapshots(table, ids)
    push_undo(workspace, actor, table, "rows.add", {"insert": added}, {"delete": added})
    return ids


def remove_rows(workspace: Workspace, actor: Actor, table: Table, row_ids: Sequence[int]) -> int:
    """Delete rows, keeping their values in the undo step so that undo puts them back where they were."""
    check_owned(workspace, table)
    ids = sorted({int(i) for i in row_ids})
    if not ids or len(ids) > MAX_DELETE_ROWS:
        raise ValidationFailed(
            f"Select 1 to {MAX_DELETE_ROWS:,} rows to delete.", fields={"rows": ["none or too many"]}
        )
    lock_rows(table)
    gone = row_snapshots(table, ids)
    removed = delete_rows(workspace, actor, table, [s["id"] for s in gone])
    if removed:
        push_undo(workspace, actor, table, "rows.delete", {"delete": gone}, {"insert": gone})
    return removed


# --- applying undo payloads ------------------------------------------------------------------------


def apply_grid_change(workspace: Workspace, actor: Actor, table: Table, payload: dict[str, Any]) -> None:
    """Apply an undo or redo payload of cell and row changes, leaving alone what others changed since."""
    check_owned(workspace, table)
    types = storage.storage_for(table).types
    skipped = 0
    if payload.get("insert"):
        skipped += len(_insert_snapshots(workspace, table, payload["insert"]))
    cells = payload.get("cells") or []
    if cells:
        current = read_cells(table, [c[0] for c in cells], lock=True)
        changes: dict[int, dict[int, Any]] = {}
        for row_id, column_id, value, expect in cells:
            row = current.get(row_id)
            if row is None or column_id not in types or row[column_id] != load_value(types[column_id], expect):
                skipped += 1
                continue
            changes.setdefault(row_id, {})[column_id] = load_value(types[column_id], value)
        write_cells(workspace, table, changes)
    doomed = payload.get("delete") or []
    if doomed:
        current = read_cells(table, [int(s["id"]) for s in doomed], lock=True)
        deletable = []
        for snap in doomed:
            row = current.get(int(snap["id"]))
            if row is None:
                continue
            expected = {int(k): v for k, v in (snap.get("cells") or {}).items()}
            if any(row[cid] != load_value(types[cid], expected.get(cid)) for cid in row):
                skipped += 1
            else:
                deletable.append(int(snap["id"]))
        if deletable:
            delete_rows(workspace, actor, table, deletable)
    if skipped:
        what = "1 change was" if skipped == 1 else f"{skipped} changes were"
        raise UndoConflict(f"{what} left as is: someone else changed it since.")


for _kind, _label in (
    ("cell", "the cell edit"),
    ("paste", "the paste"),
    ("fill", "the fill"),
    ("clear", "the clear"),
    ("rows.add", "the added rows"),
    ("rows.delete", "the row delete"),
):
    register_undo_kind(_kind, apply_grid_change, label=_label)
