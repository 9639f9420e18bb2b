"""Every route in ``app.url_map`` × every role, an outsider and an anonymous visitor.

Routes are classified by what guards them; a route that fits no class fails
``test_every_route_is_classified``, so nothing new escapes the matrix:

- workspace pages (``/w/<slug>/...``): anonymous → log in; a member of another workspace → 404;
  each role → 403 exactly when ``can(role, permission)`` is false (404 on a hidden page: billing),
  and never 404/5xx otherwise;
- API operations (``/api/v1``): no token → 401; a token of another workspace, given this
  workspace's ids → 404; each role → 403 exactly when ``can`` is false (404 when hidden);
- admin console (``/admin``): 404 to everyone but platform admins;
- account pages that need a login: anonymous → log in;
- public pages: answer without a login and never 5xx.

Path parameters are filled with real objects of the workspace (see ``ID_PARAMS``); a route with
a parameter not listed there fails, asking for its mapping.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from morket.api.routing import OPERATIONS
from morket.api.tokens import encode_access_token
from morket.core.ratelimit import clear_rate_limits
from morket.core.roles import ROLES, can
from morket.workspaces import service as ws_service
from tests.factories import MembershipFactory, csrf_token, login, workspace_with_owner

PUBLIC = {
    "static",
    "system.index",
    "system.healthz",
    "system.readiness",
    "system.metrics",
    "system.mailbox",
    "system.mailbox_message",
    "accounts.signup",
    "accounts.login",
    "accounts.forgot_password",
    "accounts.reset_password",
    "accounts.verify_email",
    "accounts.check_inbox",
    "workspaces.invitation",
    "api_docs.api_docs",
    "api.openapi_document",
    "api.issue_token",
    "api.refresh_token",
    "api.receive_enrichment_callback",
    "api.receive_inbound_webhook",
    "billing.stripe_webhook",
}
LOGIN_REQUIRED = {
    "accounts.logout",
    "accounts.settings",
    "accounts.end_all_sessions",
    "accounts.resend_verification",
    "workspaces.home",
    "workspaces.create",
    "workspaces.accept_invitation",
    "crm.callback",
}
# The API's logout takes a bearer token but no permission; it is checked with the API class.
API_NO_PERMISSION = {"api.logout", "api.get_me"}

_PARAM = re.compile(r"<(?:[a-z_]+:)?([a-z_]+)>")


@dataclass
class Team:
    workspace: object
    users: dict
    ids: dict
    outsider: object
    other_workspace: object


def _team(db) -> Team:
    workspace, owner = workspace_with_owner(name="Matrix Co")
    users = {"owner": owner}
    for role in ROLES:
        if role != "owner":
            users[role] = MembershipFactory(workspace=workspace, role=role).user
    target = MembershipFactory(workspace=workspace, role="viewer")
    key, _ = ws_service.create_api_key(workspace, owner, name="matrix", role="member")
    invitation = ws_service.invite_member(workspace, owner, "matrix.invitee@example.com", "member")
    other_workspace, outsider = workspace_with_owner(name="Elsewhere Inc")
    db.session.flush()
    ids = {
        "membership_id": target.id,
        "member_id": target.id,
        "key_id": key.id,
        "invitation_id": invitation.id,
    }
    ids.update(_table_ids(db, workspace, owner))
    ids["provider"] = "hubspot"  # CRM routes: the CRM is part of the path
    from morket.credentials import service as credentials

    ids["credential_id"] = credentials.create_credential(workspace, owner, "hunter", "sk-test-matrix-key-0001").id
    ids.update(_enrichment_ids(db, workspace, owner, ids["table_id"]))
    ids.update(_webhook_ids(workspace, owner))
    ids.update(_inbound_ids(workspace, owner, ids["table_id"]))
    ids.update(_pull_ids(db, workspace, owner, ids["table_id"]))
    ids["push_id"] = _push_id(db, workspace, owner, ids["table_id"])
    ids.update(_ai_ids(db, workspace, owner, ids["table_id"]))
    return Team(workspace, users, ids, outsider, other_workspace)


def _push_id(db, workspace, owner, table_id: int) -> int:
    """A finished CRM push (a run of kind crm_push) of the matrix table."""
    from morket.core.db import utcnow
    from morket.runs.models import Run
    from morket.tables import service as tables
    from morket.tables.access import get_table_or_404

    column = tables.add_column(workspace, owner, get_table_or_404(workspace, table_id), "HubSpot ID", "text")
    now = utcnow()
    run = Run(workspace_id=workspace.id, table_id=table_id, column_id=column.id, kind="crm_push", status="completed",
              config={"provider": "hubspot", "object": "contacts"}, started_at=now, finished_at=now)  # fmt: skip
    db.session.add(run)
    db.session.flush()
    return run.id


def _ai_ids(db, workspace, owner, table_id: int) -> dict[str, int]:
    """An AI column (its setup stored as is: the matrix has no model endpoint) and a finished AI run."""
    from morket.ai.columns import AiConfig
    from morket.runs.models import Run
    from morket.tables import service as tables

    table = tables.get_table_or_404(workspace, table_id)
    column = tables.add_column(workspace, owner, table, "Summary", "ai")
    config = AiConfig(prompt="Sum up {{Name}}", inputs={"Name": table.live_columns[0].id})
    column.config = config.model_dump(mode="json")
    run = Run(workspace_id=workspace.id, table_id=table_id, column_id=column.id, kind="ai", status="completed",
              config={"column": column.config})  # fmt: skip
    db.session.add(run)
    db.session.flush()
    # The matrix row's research result, so the route that reads one finds it (it is 404 for a row
    # never researched, as for another workspace's ids).
    from morket.ai.column_models import AiResearchResult

    row_id = db.session.execute(sa.text(f"SELECT min(id) FROM ut.t_{int(table_id)}")).scalar()  # noqa: S608
    found = AiResearchResult(workspace_id=workspace.id, table_id=table_id, column_id=column.id, row_id=row_id,
                             run_id=run.id, status="answered", answer="Analytics", record={"sources": []})  # fmt: skip
    db.session.add(found)
    db.session.flush()
    return {"ai_column_id": column.id, "ai_run_id": run.id}


def _pull_ids(db, workspace, owner, table_id: int) -> dict[str, int]:
    """A CRM pull source of the matrix table (no CRM connection: starting it is a 409) and a finished pull."""
    from morket.crm.pull_models import CrmPull, CrmPullSource

    source = CrmPullSource(workspace_id=workspace.id, table_id=table_id, provider="hubspot", kind="list",
                           label="HubSpot list", spec={"list_id": "1", "object": "contacts", "fields": []},
                           columns={"fields": {}})  # fmt: skip
    db.session.add(source)
    db.session.flush()
    done = CrmPull(workspace_id=workspace.id, source_id=source.id, status="done", full=True, cursor={})
    db.session.add(done)
    db.session.flush()
    return {"pull_source_id": source.id, "pull_id": done.id}


def _inbound_ids(workspace, owner, table_id: int) -> dict[str, int]:
    """An inbound source of the matrix table and one payload it refused."""
    from morket.inbound import service as inbound
    from morket.tables import service as tables

    source, _ = inbound.create_source(workspace, owner, tables.get_table_or_404(workspace, table_id), "Matrix hook")
    failure = inbound.record_failure(source.id, workspace.id, b"{", inbound.Refused(400, "invalid_json", "Not JSON."))
    return {"source_id": source.id, "failure_id": failure.id}


def _webhook_ids(workspace, owner) -> dict[str, int]:
    """An outbound webhook endpoint (https on a public address literal) and one test delivery."""
    from morket.webhooks import service as webhooks

    endpoint, _ = webhooks.create_endpoint(workspace, owner, "https://93.184.216.34/hook", ["row.created"])
    delivery = webhooks.send_test_event(workspace, owner, endpoint)
    return {"endpoint_id": endpoint.id, "delivery_id": delivery.id}


def _table_ids(db, workspace, owner) -> dict[str, int]:
    """Ids of a small table, its column, row and view, when the tables capability is present."""
    try:
        from morket.tables import service as tables
    except ImportError:
        return {}
    table = tables.create_table(workspace, owner, "Matrix table", columns=[{"name": "Name", "type": "text"}])
    column = table.columns[0] if getattr(table, "columns", None) else None
    row_ids = tables.insert_rows(workspace, owner, table, [{"Name": "Ada"}])
    view = tables.create_view(workspace, owner, table, "Matrix view")
    db.session.flush()
    found = {"table_id": table.id, "row_id": row_ids[0], "view_id": view.id}
    if column is not None:
        found["column_id"] = column.id
        from morket.tables.column_service import ColumnJob

        job = ColumnJob(workspace_id=workspace.id, table_id=table.id, column_id=column.id, kind="formula", state="done")
        db.session.add(job)
        db.session.flush()
        found["job_id"] = job.id
    from morket.dataops.models import DataRun

    run = DataRun(
        workspace_id=workspace.id,
        kind="import",
        status="done",
        table_id=table.id,
        file_name="m.csv",
        settings={"token": "matrix"},
    )
    db.session.add(run)
    db.session.flush()
    found["run_id"] = run.id
    from morket.dataops.service import errors_path

    errors_path(run).parent.mkdir(parents=True, exist_ok=True)
    errors_path(run).write_text("line,reason\n2,not a number\n")
    from morket.core.db import utcnow
    from morket.dataops import exports

    export = DataRun(
        workspace_id=workspace.id,
        kind="export",
        status="done",
        table_id=table.id,
        file_name="m.csv",
        settings={"background": True, "token": "matrix"},
        finished_at=utcnow(),
    )
    db.session.add(export)
    db.session.flush()
    found["export_id"] = export.id
    found["token"] = exports.link_token(export)
    return found


def _enrichment_ids(db, workspace, owner, table_id: int) -> dict[str, int]:
    """An enrichment column with a finished run, and a finished scrape, of the matrix workspace."""
    from morket.core.db import utcnow
    from morket.enrichment.columns import create_enrichment_column
    from morket.enrichment.models import EnrichmentRun
    from morket.enrichment.schemas import ColumnSetup
    from morket.scraping.models import ScrapeRequest
    from morket.tables import service as tables

    table = tables.get_table_or_404(workspace, table_id)
    domain = tables.add_column(workspace, owner, table, "Domain", "domain")
    setup = ColumnSetup(
        name="Company", steps=[{"operation": "apollo.organization_enrich"}], target="name", inputs={"domain": domain.id}
    )
    column = create_enrichment_column(workspace, owner, table, setup)
    run = EnrichmentRun(
        workspace_id=workspace.id, table_id=table.id, column_id=column.id, scope="all", status="completed"
    )
    scrape = ScrapeRequest(
        workspace_id=workspace.id,
        url="https://example.com/",
        extractor="generic",
        status="done",
        finished_at=utcnow(),
        screenshot=b"\xff\xd8\xff\xd9",
    )
    db.session.add_all([run, scrape])
    db.session.flush()
    return {"enrichment_column_id": column.id, "enrichment_run_id": run.id, "scrape_id": scrape.id}


# Parameters whose object depends on the domain of the route: an enrichment route's column_id names
# an enrichment column, its run_id an enrichment run (elsewhere: a plain column, an import run).
_DOMAIN_IDS = {"enrichment": {"column_id": "enrichment_column_id", "run_id": "enrichment_run_id"}}


def _fill(rule: str, team: Team, slug: str | None = None, endpoint: str = "") -> str:
    overrides: dict[str, str] = {}
    for domain, names in _DOMAIN_IDS.items():
        if domain in endpoint:
            overrides = names

    def sub(match: re.Match) -> str:
        name = overrides.get(match.group(1), match.group(1))
        if name == "slug":
            return slug or team.workspace.slug
        if name not in team.ids:
            pytest.fail(f"route {rule}: add a mapping for path parameter <{name}> to tests/test_route_matrix.py")
        return str(team.ids[name])

    return _PARAM.sub(sub, rule)


def _rules(app):
    return [r for r in app.url_map.iter_rules()]


def _methods(rule) -> list[str]:
    return sorted(m for m in rule.methods if m not in {"HEAD", "OPTIONS"})


def _classify(rule) -> str:
    if rule.endpoint in PUBLIC:
        return "public"
    if rule.endpoint in LOGIN_REQUIRED:
        return "login"
    if rule.rule.startswith("/w/<slug>"):
        return "workspace"
    if rule.rule.startswith("/api/v1/"):
        return "api"
    if rule.rule.startswith("/admin"):
        return "admin"
    return "unclassified"


def test_every_route_is_classified(app):
    loose = [f"{r.endpoint} {r.rule}" for r in _rules(app) if _classify(r) == "unclassified"]
    assert not loose, f"routes missing from the role matrix: {loose}"


def test_every_workspace_page_declares_its_permission(app):
    missing = [
        r.endpoint
        for r in _rules(app)
        if _classify(r) == "workspace" and not getattr(app.view_functions[r.endpoint], "morket_permission", None)
    ]
    assert not missing, f"workspace routes without workspace_page(permission): {missing}"


def _cases(app, kind: str):
    return [(r.endpoint, r.rule, m) for r in _rules(app) if _classify(r) == kind for m in _methods(r)]


@pytest.fixture(autouse=True)
def _data_folder(app, tmp_path, monkeypatch):
    """Imports and exports of the matrix write their files under the test's own folder."""
    monkeypatch.setitem(app.config["MORKET"], "DATAOPS_DIR", str(tmp_path / "dataops"))


@pytest.fixture(scope="module")
def route_cases(app):
    return {kind: _cases(app, kind) for kind in ("workspace", "api", "admin", "login", "public")}


def _request(client, method: str, path: str, *, csrf: str | None = None, headers=None, json=None):
    headers = dict(headers or {})
    if csrf:
        headers["X-CSRFToken"] = csrf
    return client.open(path, method=method, headers=headers, json=json)


def test_workspace_pages_for_every_role(app, client, new_client, db, route_cases):
    team = _team(db)
    failures = []
    for endpoint, rule, method in route_cases["workspace"]:
        # The same users visit every route: their rate-limit counters would run out before the routes do.
        clear_rate_limits()
        permission = app.view_functions[endpoint].morket_permission
        anonymous = new_client()
        resp = _request(anonymous, method, _fill(rule, team, endpoint=endpoint))
        if method == "GET" and not (resp.status_code == 302 and "/login" in resp.headers["Location"]):
            failures.append(f"{method} {rule} anonymous → {resp.status_code}")
        if method != "GET" and resp.status_code not in {302, 400, 401}:
            failures.append(f"{method} {rule} anonymous → {resp.status_code}")
        outsider = new_client()
        login(outsider, team.outsider)
        token = csrf_token(outsider, "/w")
        resp = _request(outsider, method, _fill(rule, team, endpoint=endpoint), csrf=token)
        if resp.status_code != 404:
            failures.append(f"{method} {rule} outsider → {resp.status_code}, expected 404")
        for role in ROLES:
            if method != "GET" and can(role, permission):
                continue  # allowed writes are exercised by each domain's own tests (they change state)
            browser = new_client()
            login(browser, team.users[role])
            token = csrf_token(browser, "/w")
            resp = _request(browser, method, _fill(rule, team, endpoint=endpoint), csrf=token)
            expected_forbidden = not can(role, permission)
            # A hidden page (billing) answers a role without its permission as if it did not exist.
            refusal = 404 if getattr(app.view_functions[endpoint], "morket_hidden", False) else 403
            if expected_forbidden and resp.status_code != refusal:
                failures.append(f"{method} {rule} as {role} → {resp.status_code}, expected {refusal}")
            # A 404 is wrong only where we passed real ids; a route keyed by query string may 404 without them.
            denied = {403, 404} if "<int:" in rule else {403}
            if not expected_forbidden and (resp.status_code in denied or resp.status_code >= 500):
                failures.append(f"{method} {rule} as {role} → {resp.status_code}, expected access")
    assert not failures, "\n".join(failures)


def _bearer(user, workspace, role) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode_access_token(user.id, workspace.id, role)}"}


def test_api_operations_for_every_role(app, client, db, route_cases):
    team = _team(db)
    operations = {op.endpoint: op for op in OPERATIONS}
    failures = []
    for endpoint, rule, method in route_cases["api"]:
        op = operations.get(endpoint)
        if op is None:
            failures.append(f"{endpoint} is an /api/v1 route that api_route did not register")
            continue
        if not op.authenticated:
            continue
        path = _fill(rule, team, endpoint=endpoint)
        resp = _request(client, method, path, json={})
        if resp.status_code != 401:
            failures.append(f"{method} {rule} without a token → {resp.status_code}, expected 401")
        if "<" in rule:
            resp = _request(
                client, method, path, json={}, headers=_bearer(team.outsider, team.other_workspace, "owner")
            )
            # A body refused before any lookup (422 for the owner too) reveals nothing about the id.
            refused_alike = (
                resp.status_code == 422
                and _request(
                    client, method, path, json={}, headers=_bearer(team.users["owner"], team.workspace, "owner")
                ).status_code
                == 422
            )
            if resp.status_code != 404 and not refused_alike:
                failures.append(f"{method} {rule} with another workspace's token → {resp.status_code}, expected 404")
        for role in ROLES:
            if method != "GET" and (op.permission is None or can(role, op.permission)):
                continue  # allowed writes are exercised by the API's own tests
            user = team.users[role]
            resp = _request(client, method, path, json={}, headers=_bearer(user, team.workspace, role))
            forbidden = op.permission is not None and not can(role, op.permission)
            refusal = 404 if op.hidden else 403
            if forbidden and resp.status_code != refusal:
                failures.append(f"{method} {rule} as {role} → {resp.status_code}, expected {refusal}")
            if not forbidden and (resp.status_code in {401, 403, 404} or resp.status_code >= 500):
                failures.append(f"{method} {rule} as {role} → {resp.status_code}, expected access")
    assert not failures, "\n".join(failures)


def test_admin_console_is_invisible_to_workspace_owners(app, new_client, db, route_cases):
    team = _team(db)
    owner = new_client()
    login(owner, team.users["owner"])
    token = csrf_token(owner, "/w")
    failures = []
    for _endpoint, rule, method in route_cases["admin"]:
        path = re.sub(r"<int:[a-z_]+>", str(team.users["owner"].id), rule)
        resp = _request(owner, method, path, csrf=token)
        if resp.status_code != 404:
            failures.append(f"{method} {rule} as a workspace owner → {resp.status_code}, expected 404")
    assert not failures, "\n".join(failures)


def test_login_pages_send_visitors_to_log_in(app, new_client, db, route_cases):
    failures = []
    for endpoint, rule, method in route_cases["login"]:
        path = re.sub(r"<[a-z_:]+>", "x", rule)
        resp = _request(new_client(), method, path)
        refused = resp.status_code in {400, 401} or (resp.status_code == 302 and "/login" in resp.headers["Location"])
        if method == "GET" and endpoint != "workspaces.accept_invitation":
            refused = resp.status_code == 302 and "/login" in resp.headers["Location"]
        if not refused:
            failures.append(f"{method} {rule} anonymous → {resp.status_code}")
    assert not failures, "\n".join(failures)


def test_public_pages_answer_without_a_login(app, new_client, db, route_cases):
    failures = []
    for _endpoint, rule, method in route_cases["public"]:
        if method != "GET" or "<" in rule:
            continue
        resp = new_client().get(rule)
        if resp.status_code >= 500 or resp.status_code in {401, 403}:
            failures.append(f"GET {rule} → {resp.status_code}")
    assert not failures, "\n".join(failures)
