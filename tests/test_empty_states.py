"""Every list a user can reach says, when it is empty, what it is for and the next step: the one
``empty_state`` macro (``templates/_macros/empty.html``) with a title, a sentence and a link to where
the next step happens. Each page is rendered empty; a bare table, a bare "None" or a missing action fails."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.crm.conftest import crm  # noqa: F401 - the CRM sandboxes fixture
from tests.factories import MembershipFactory, login, workspace_with_owner

EMPTY = re.compile(
    r'<div class="empty" data-empty-state[^>]*>\s*<p class="empty-title"><strong>(?P<title>[^<]+)</strong></p>\s*'
    r"<p>(?P<text>[^<]+)</p>(?P<rest>.*?)</div>",
    re.S,
)
ACTION = re.compile(r'<a class="button primary" href="(?P<href>[^"]+)" data-empty-action>(?P<label>[^<]+)</a>')
# An action that changes something is a form's primary button (connect a CRM): its href is the form's action.
FORM_ACTION = re.compile(
    r'<form method="post" action="(?P<href>[^"]+)"[^>]*>.*?'
    r'<button type="submit" class="button primary" data-empty-action>(?P<label>[^<]+)</button>',
    re.S,
)


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # {slug} is the workspace's
    title: str
    href: str  # {slug} likewise; the action's link
    role: str = "owner"
    platform_admin: bool = False
    table: list | None = None  # columns of a table to create first; its id fills {table_id}
    settings: tuple = ()  # (name, value) pairs of the MORKET settings for this page (a CRM's OAuth app)
    make: str | None = None  # what else to create first: "inbound source" fills {source_id}, "endpoint" {endpoint_id}


CASES = [
    Case("overview's tables", "/w/{slug}/", "No tables yet", "/w/{slug}/tables"),
    Case("overview's tables as a viewer", "/w/{slug}/", "No tables yet", "/w/{slug}/members", role="viewer"),
    Case("tables", "/w/{slug}/tables", "Create your first table", "#new-table"),
    Case("tables as a viewer", "/w/{slug}/tables", "No tables yet", "/w/{slug}/members", role="viewer"),
    Case("enrichment runs", "/w/{slug}/runs", "No enrichment runs yet", "/w/{slug}/tables"),
    Case("scrapes", "/w/{slug}/scrape", "No scrapes yet", "#scrape-url"),
    Case("large exports", "/w/{slug}/exports", "No large exports yet", "/w/{slug}/tables"),
    Case("imports and exports", "/w/{slug}/imports", "Nothing imported or exported yet", "#import-upload"),
    Case("export a table", "/w/{slug}/imports", "No tables to export yet", "#import-upload"),
    Case("members with only the owner", "/w/{slug}/members", "Only you so far", "#invite-member"),
    Case("pending invitations", "/w/{slug}/members", "No pending invitations", "#invite-member"),
    Case("API keys", "/w/{slug}/api-keys", "No API keys yet", "#create-api-key"),
    Case("credentials", "/w/{slug}/credentials", "No provider keys yet", "#add-credential"),
    Case("credit ledger", "/w/{slug}/credits", "No credit history yet", "/w/{slug}/runs"),
    Case("credit ledger filtered", "/w/{slug}/credits?kind=refund", "No refunds here.", "/w/{slug}/credits"),
    Case("admin user search", "/admin?q=nobody", "No user matches “nobody”", "/admin", platform_admin=True),
    Case(
        "admin workspace search",
        "/admin/workspaces?q=nothing-like-it",
        "No workspace matches “nothing-like-it”",
        "/admin/workspaces",
        platform_admin=True,
    ),
    Case(
        "bulk edit without text columns",
        "/w/{slug}/tables/{table_id}/bulk",
        "No text columns",
        "/w/{slug}/tables/{table_id}",
        table=[{"name": "Seats", "type": "number"}],
    ),
    Case("webhook endpoints", "/w/{slug}/webhooks", "No webhook endpoints yet", "#add-webhook"),
    Case(
        "webhook deliveries",
        "/w/{slug}/webhooks/{endpoint_id}",
        "No deliveries yet",
        "#webhook-send-test",
        make="endpoint",
    ),
    Case(
        "CRM connections",
        "/w/{slug}/connections",
        "HubSpot is not connected",
        "/w/{slug}/connections/hubspot/connect",
        settings=(("HUBSPOT_CLIENT_ID", "empty-states-app"), ("HUBSPOT_CLIENT_SECRET", "empty-states-secret")),
    ),
    Case(
        "inbound sources",
        "/w/{slug}/tables/{table_id}/inbound",
        "No inbound sources yet",
        "#inbound-create",
        table=[{"name": "Email", "type": "email"}],
    ),
    Case(
        "inbound payloads received",
        "/w/{slug}/tables/{table_id}/inbound/{source_id}",
        "Nothing received yet",
        "/w/{slug}/tables/{table_id}",
        table=[{"name": "Email", "type": "email"}],
        make="inbound source",
    ),
    Case(
        "inbound preview before any payload",
        "/w/{slug}/tables/{table_id}/inbound/{source_id}",
        "No payload yet",
        "#paste-sample",
        table=[{"name": "Email", "type": "email"}],
        make="inbound source",
    ),
    Case(
        "inbound refused payloads",
        "/w/{slug}/tables/{table_id}/inbound/{source_id}",
        "No refused payloads",
        "/w/{slug}/tables/{table_id}",
        table=[{"name": "Email", "type": "email"}],
        make="inbound source",
    ),
    Case("AI model endpoints", "/w/{slug}/ai-models", "No model endpoints yet", "#add-endpoint"),
    Case("billing usage this period", "/w/{slug}/billing", "No credits used this period", "/w/{slug}/tables"),
    Case("billing invoices", "/w/{slug}/billing", "No invoices yet", "#billing-plans"),
    Case(
        "search with no results",
        "/w/{slug}/search?q=nowhere-to-be-found",
        "Nothing matches “nowhere-to-be-found”",
        "/w/{slug}/tables",
    ),
    Case(
        "search with filters and no results",
        "/w/{slug}/search?q=nowhere&table=999999",
        "Nothing matches with these filters",
        "/w/{slug}/search?q=nowhere",
    ),
    Case("CRM pull without a connection", "/w/{slug}/crm/pull", "No CRM is connected", "/w/{slug}/connections"),
    Case(
        "lookup without another table",
        "/w/{slug}/tables/{table_id}/columns/new",
        "No other table to look up from",
        "/w/{slug}/tables",
        table=[{"name": "Domain", "type": "domain"}],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_an_empty_list_says_what_it_is_for_and_links_the_next_step(app, client, db, monkeypatch, case: Case):
    for name, value in case.settings:
        monkeypatch.setitem(app.config["MORKET"], name, value)
    workspace, owner = workspace_with_owner(name="Empty Co")
    user = owner
    if case.role != "owner":
        user = MembershipFactory(workspace=workspace, role=case.role).user
    if case.platform_admin:
        user.is_platform_admin = True
    fill = {"slug": workspace.slug}
    if case.table is not None:
        from morket.tables import service

        fill["table_id"] = service.create_table(workspace, owner, "Numbers only", columns=case.table).id
    if case.make == "inbound source":
        from morket.inbound import service as inbound
        from morket.tables import service as tables

        table = tables.get_table_or_404(workspace, fill["table_id"])
        fill["source_id"] = inbound.create_source(workspace, owner, table, "Signup form")[0].id
    if case.make == "endpoint":
        from morket.webhooks import service as webhooks

        endpoint, _ = webhooks.create_endpoint(workspace, owner, "https://93.184.216.34/h", ["row.created"])
        fill["endpoint_id"] = endpoint.id
    db.session.flush()
    login(client, user)
    resp = client.get(case.path.format(**fill))
    assert resp.status_code == 200, resp.status_code
    html = resp.get_data(as_text=True)
    states = {m["title"].strip(): m for m in EMPTY.finditer(html)}
    found = states.get(case.title) or states.get(_escaped(case.title))
    assert found, f"no empty state titled {case.title!r} on {case.path}: {sorted(states)}"
    assert len(found["text"].split()) >= 5, f"the empty state does not say what the page is for: {found['text']!r}"
    action = ACTION.search(found["rest"]) or FORM_ACTION.search(found["rest"])
    assert action, f"the empty state {case.title!r} has no next step"
    assert action["href"] == case.href.format(**fill)
    if action.re is FORM_ACTION:
        pass  # a post, checked by its own tests (a GET of it is 405)
    elif action["href"].startswith("#"):
        assert f'id="{action["href"][1:]}"' in html, f"the action points at {action['href']}, which is not on the page"
    else:
        assert client.get(action["href"]).status_code == 200, f"the action's page {action['href']} does not open"
    text = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S))
    assert not re.search(r"\bNone\b", text), "the page shows a bare None"


def _escaped(title: str) -> str:
    from markupsafe import escape

    return str(escape(title))


def test_the_pull_page_with_a_crm_connected_offers_to_start_the_first_pull(client, db, crm):  # noqa: F811
    """With HubSpot connected, "No pulls yet" points at the pull form on the same page."""
    from tests.crm.conftest import connect

    workspace, owner = workspace_with_owner(name="Pull Empty Co")
    db.session.flush()
    login(client, owner)
    connect(client, crm, workspace.slug, "hubspot")
    html = client.get(f"/w/{workspace.slug}/crm/pull").get_data(as_text=True)
    states = {m["title"].strip(): m for m in EMPTY.finditer(html)}
    assert "No pulls yet" in states and "No CRM is connected" not in states, sorted(states)
    action = ACTION.search(states["No pulls yet"]["rest"])
    assert action and action["href"] == "#pull-form" and 'id="pull-form"' in html
