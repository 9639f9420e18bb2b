"""A new workspace's first steps: the getting-started checklist (tables offers the sample table, in sandbox mode)."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import text

from morket.extensions import db
from morket.workspaces.models import Workspace


class Step(NamedTuple):
    key: str
    title: str
    hint: str
    done: bool


def checklist(workspace: Workspace) -> list[Step]:
    """The getting-started steps with what the workspace has already done, read in one statement.

    Read by table name rather than through the other domains' models: the checklist only asks
    whether something happened, and must not tie the workspace overview to their internals.
    """
    row = db.session.execute(
        text(
            "SELECT"
            " EXISTS (SELECT 1 FROM data_runs WHERE workspace_id = :w AND kind = 'import' AND status = 'done'),"
            " EXISTS (SELECT 1 FROM table_columns WHERE workspace_id = :w AND type = 'enrichment'"
            " AND deleted_at IS NULL),"
            " EXISTS (SELECT 1 FROM enrichment_runs WHERE workspace_id = :w),"
            " EXISTS (SELECT 1 FROM data_runs WHERE workspace_id = :w AND kind = 'export')"
        ),
        {"w": workspace.id},
    ).one()
    imported, enrichment_column, ran, exported = row
    return [
        Step("import", "Import a CSV", "Bring in your own list of companies or people.", bool(imported)),
        Step(
            "enrich",
            "Add an enrichment column",
            "In a table, add a column that finds emails, company data or a website's details.",
            bool(enrichment_column),
        ),
        Step("run", "Run it", "Estimate the credits, then run the column on your rows.", bool(ran)),
        Step("export", "Export or push", "Download the result as a CSV, or send it to your CRM.", bool(exported)),
    ]
