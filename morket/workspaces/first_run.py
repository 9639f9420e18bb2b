"""A new workspace's first steps: the sample table (sandbox mode) and the getting-started checklist."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import text

from morket.accounts.models import User
from morket.core.errors import Forbidden, NotFound
from morket.core.roles import can
from morket.extensions import db
from morket.workspaces.models import Membership, Workspace

SAMPLE_TABLE_NAME = "Sample companies"
# Fictional companies on the reserved .example domain: the sandbox's providers answer for them, and
# a workspace that later uses real provider keys sends no real company's name anywhere by accident.
SAMPLE_COMPANIES: tuple[tuple[str, str, str], ...] = (
    ("Northwind Traders", "northwind.example", "United States"),
    ("Contoso Analytics", "contoso-analytics.example", "United States"),
    ("Fabrikam Robotics", "fabrikam.example", "Germany"),
    ("Tailspin Travel", "tailspin.example", "United Kingdom"),
    ("Wingtip Payments", "wingtip-pay.example", "Netherlands"),
    ("Adventure Works Cycles", "adventure-works.example", "Canada"),
    ("Litware Health", "litware-health.example", "France"),
    ("Proseware Learning", "proseware.example", "Portugal"),
    ("Lamna Logistics", "lamna.example", "Singapore"),
    ("Trey Research", "treyresearch.example", "United States"),
    ("Blue Yonder Airlines", "blueyonder.example", "Canada"),
    ("Coho Vineyard", "cohovineyard.example", "France"),
    ("Alpine Ski House", "alpineskihouse.example", "Germany"),
    ("Margie's Travel", "margiestravel.example", "United Kingdom"),
    ("Woodgrove Bank", "woodgrove.example", "United States"),
    ("Fourth Coffee", "fourthcoffee.example", "Netherlands"),
    ("Graphic Design Institute", "graphicdesign.example", "Portugal"),
    ("Humongous Insurance", "humongous.example", "United States"),
    ("Relecloud", "relecloud.example", "Singapore"),
    ("VanArsdel Foods", "vanarsdel.example", "Canada"),
    ("Wide World Importers", "wideworldimporters.example", "United Kingdom"),
    ("Southridge Video", "southridge.example", "Germany"),
    ("Consolidated Messenger", "consolidated.example", "France"),
    ("Lucerne Publishing", "lucerne.example", "Netherlands"),
    ("School of Fine Art", "fineart.example", "United States"),
)
SAMPLE_COLUMNS = (
    {"name": "Company", "type": "text"},
    {"name": "Domain", "type": "domain"},
    {"name": "Country", "type": "text"},
)


class Step(NamedTuple):
    key: str
    title: str
    hint: str
    done: bool


def create_sample_table(workspace: Workspace, actor: User, membership: Membership, *, sandbox: bool):
    """Create the 25-company sample table in ``workspace``; only in sandbox mode, for those who build tables."""
    from morket.tables.service import create_table, insert_rows

    if not sandbox:
        raise NotFound("The sample table is offered in sandbox mode only.")
    if not can(membership.role, "tables.manage"):
        raise Forbidden("Your role cannot create tables in this workspace.")
    table = create_table(workspace, actor, SAMPLE_TABLE_NAME, columns=SAMPLE_COLUMNS)
    insert_rows(
        workspace,
        actor,
        table,
        [{"Company": name, "Domain": domain, "Country": country} for name, domain, country in SAMPLE_COMPANIES],
    )
    return table


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
