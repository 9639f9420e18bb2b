"""Running a column on "the rest": every row after the first ten in the grid's order, at any table size."""

from __future__ import annotations

import sqlalchemy as sa

from morket.enrichment import panel_service
from morket.enrichment.models import EnrichmentRun, EnrichmentRunRow
from morket.extensions import db as _db
from morket.tables import service as tables
from morket.tables import storage
from tests.factories import workspace_with_owner
from tests.support.seeding import seed_rows


def _domains_table(n: int, *, seeded: bool = False):
    workspace, owner = workspace_with_owner()
    table = tables.create_table(workspace, owner, "Accounts", columns=[{"name": "Company domain", "type": "domain"}])
    if seeded:
        seed_rows(workspace, owner, table, n, values=((f"acct{i}.example.com",) for i in range(n)))
    else:
        tables.insert_rows(workspace, owner, table, [{"Company domain": f"acct{i}.example.com"} for i in range(n)])
    table = tables.get_table_or_404(workspace, table.id)
    card = panel_service.get_card_or_404(workspace, "op:apollo.organization_enrich")
    domain = {c.name: c.id for c in table.live_columns}["Company domain"]
    column = panel_service.create_from_card(
        workspace, owner, table, card, name="Company", chosen={"domain": (domain, None)}
    )
    return workspace, owner, tables.get_table_or_404(workspace, table.id), column


def _grid_order(table) -> list[int]:
    rows = storage.storage_for(table).rows
    return list(_db.session.scalars(sa.select(rows.c.id).order_by(rows.c.pos)))


def test_the_rest_is_every_row_after_the_first_ten_in_the_grids_order(db):
    workspace, owner, table, column = _domains_table(16)
    order = _grid_order(table)
    tables.delete_rows(workspace, owner, table, [order[2]])  # the first ten now reach one row further
    order = _grid_order(table)

    first = panel_service.start(workspace, owner, table, column, "first")
    rest = panel_service.start(workspace, owner, table, column, "rest")

    def covered(run: EnrichmentRun) -> set[int]:
        return set(_db.session.scalars(sa.select(EnrichmentRunRow.row_id).where(EnrichmentRunRow.run_id == run.id)))

    assert covered(first) == set(order[:10])
    assert (rest.scope, rest.total) == ("rest", 5)
    assert covered(rest) == set(order[10:])


def test_a_table_of_ten_rows_or_fewer_has_no_rest(db):
    workspace, owner, table, column = _domains_table(10)
    assert panel_service.estimate(workspace, owner, table, column, "rest").rows == 0


def test_the_rest_of_a_table_above_the_selection_limit_is_still_the_rest_not_the_empty_rows(db):
    from morket.enrichment import service

    n = service.MAX_SELECTED_ROWS + 25
    workspace, owner, table, column = _domains_table(n, seeded=True)
    # One of the first rows already has a value and one row after them too: "empty rows" would cover
    # every other row, "the rest" covers exactly the rows after the first ten, whatever they hold.
    order = _grid_order(table)
    store = storage.storage_for(table)
    cell = store.columns[column.id]
    _db.session.execute(
        sa.update(store.rows).where(store.rows.c.id.in_([order[0], order[500]])).values({cell: {"value": "Acme"}})
    )

    estimate = panel_service.estimate(workspace, owner, table, column, "rest")
    assert estimate.rows == n - 10
    run = panel_service.start(workspace, owner, table, column, "rest", confirm=True)
    assert (run.scope, run.total) == ("rest", n - 10)
    assert panel_service.estimate(workspace, owner, table, column, "empty").rows == n - 2
