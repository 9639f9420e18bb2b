"""``flask search reindex``: rebuild the search index of a table, a workspace or everything.

Each table is rebuilt in its own transaction (the old documents stay visible until it commits),
so search stays online while it runs.
"""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask.cli import AppGroup

from morket.extensions import db
from morket.search import tasks

search_cli = AppGroup("search", help="The workspace search index.")


@search_cli.command("reindex")
@click.option("--table", "table_id", type=int, help="Rebuild one table (its id).")
@click.option("--workspace", "workspace", help="Rebuild every table of a workspace (its id or slug).")
@click.option("--all", "everything", is_flag=True, help="Rebuild every table of every workspace.")
def reindex_command(table_id: int | None, workspace: str | None, everything: bool) -> None:
    """Rebuild the index without taking search offline (build, then swap, per table)."""
    if sum(x is not None and x is not False for x in (table_id, workspace, everything)) != 1:
        raise click.UsageError("choose one of --table, --workspace or --all")
    if table_id is not None:
        sql, params = "SELECT id FROM tables WHERE id = :v", {"v": table_id}
    elif workspace is not None:
        by_id = workspace.isdigit()
        where = "w.id = :v" if by_id else "w.slug = :v"
        sql = "SELECT t.id FROM tables t JOIN workspaces w ON w.id = t.workspace_id WHERE " + where  # noqa: S608
        params = {"v": int(workspace) if by_id else workspace}
    else:
        sql, params = "SELECT id FROM tables", {}
    ids = [int(r.id) for r in db.session.execute(sa.text(sql + " ORDER BY 1"), params)]
    if not ids:
        raise click.ClickException("no table matches")
    written = tasks.reindex(ids)
    click.echo(f"reindexed {len(ids)} table(s), {written} document(s)")
