"""The sample table a sandbox workspace can start with: 25 fictional companies, offered on the overview."""

from __future__ import annotations

from morket.core.errors import Forbidden, NotFound
from morket.core.roles import can
from morket.core.types import Actor, Member, Workspace
from morket.tables.models import Table
from morket.tables.service import create_table, insert_rows

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


def create_sample_table(workspace: Workspace, actor: Actor, membership: Member, *, sandbox: bool) -> Table:
    """Create the 25-company sample table in ``workspace``; only in sandbox mode, for those who build tables."""
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
