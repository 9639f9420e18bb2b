"""What the domains above tables register with it, so that tables imports none of them.

Enrichment depends on tables (its columns and cells live in tables' storage), so tables cannot
ask enrichment anything. Enrichment registers once, when its blueprint registers, never per request:

- the states its cells can be in (a row's ``cell_state`` under the column id, e.g.
  ``{"status": "no_data", "provider": "hunter", "run_id": 7}``) and their labels, which the grid
  marks on cells and names in their tooltips, and which the "enrichment state" filter accepts;
- a listener for rows that an edit wrote (paste, fill, clear, undo, added rows), called in the
  same transaction: enrichment starts the auto-run columns over them;
- a listener for rows created, updated or deleted by any path (grid, API, paste), called in the
  same transaction: the outbound webhooks write their events there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from morket.tables.models import Table

RowsChanged = Callable[["Table", list[int]], object]

_STATE_LABELS: dict[str, str] = {}
# Every registered state's label, read-only: the dict the registrations fill.
CELL_STATE_LABELS: Mapping[str, str] = MappingProxyType(_STATE_LABELS)
# The statuses the grid marks on a cell: tables' own "error" (a formula's, or a value a retype could
# not keep) and every registered state. Filled in place, so readers hold the one set.
MARKED_CELL_STATUSES: set[str] = {"error"}

_ROWS_CHANGED: dict[str, RowsChanged] = {}
RowEvents = Callable[["Table", str, list[int]], object]
_ROW_EVENTS: dict[str, RowEvents] = {}


def register_cell_states(labels: Mapping[str, str]) -> None:
    """Let cells carry the states ``labels`` names (state -> label shown to the user)."""
    _STATE_LABELS.update(labels)
    MARKED_CELL_STATUSES.update(labels)


def on_rows_changed(name: str, listener: RowsChanged) -> None:
    """Call ``listener(table, row_ids)`` whenever an edit writes rows of a table, before it commits."""
    _ROWS_CHANGED[name] = listener


def rows_changed(table: Table, row_ids: Sequence[int]) -> None:
    """Tell the listeners that ``row_ids`` of ``table`` were written (nothing when no row was)."""
    if not row_ids:
        return
    for listener in _ROWS_CHANGED.values():
        listener(table, list(row_ids))


def on_row_events(name: str, listener: RowEvents) -> None:
    """Call ``listener(table, kind, row_ids)`` when rows are created, updated or deleted, before commit.

    ``kind`` is ``created``, ``updated`` or ``deleted``; the outbound webhooks announce them.
    """
    _ROW_EVENTS[name] = listener


def row_events(table: Table, kind: str, row_ids: Sequence[int]) -> None:
    """Tell the row-event listeners that ``row_ids`` of ``table`` were ``kind`` (nothing when no row was)."""
    if not row_ids:
        return
    for listener in _ROW_EVENTS.values():
        listener(table, kind, list(row_ids))
