"""Plan limits at the enrichment run's start, through the API: a run larger than the plan allows, or
any run while credits are owed after a clawback, is refused with a message saying what to do."""

from __future__ import annotations

from morket.api.tokens import encode_access_token
from morket.billing import service
from morket.credits import service as credits
from morket.enrichment.models import EnrichmentRun
from morket.tables import service as tables

PEOPLE = (
    {"name": "First name", "type": "text"},
    {"name": "Last name", "type": "text"},
    {"name": "Domain", "type": "domain"},
)


def _column(client, workspace, owner, rows: int):
    table = tables.create_table(workspace, owner, "People", columns=list(PEOPLE))
    tables.insert_rows(
        workspace,
        owner,
        table,
        [{"First name": "Ada", "Last name": f"Roe{i}", "Domain": f"c{i}.example.org"} for i in range(rows)],
    )
    ids = {c.name: c.id for c in table.live_columns}
    auth = {"Authorization": f"Bearer {encode_access_token(owner.id, workspace.id, 'owner')}"}
    base = f"/api/v1/tables/{table.id}/enrichment-columns"
    body = {
        "name": "Work email",
        "steps": [{"operation": "hunter.email_finder"}],
        "target": "email",
        "inputs": {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": ids["Domain"]},
    }
    created = client.post(base, json=body, headers=auth)
    assert created.status_code == 201, created.get_json()
    return f"{base}/{created.get_json()['data']['id']}/runs", auth


def test_a_run_over_the_plans_size_is_refused_with_an_upgrade_message(client, db, team, stripe_settings):
    workspace, owner = team.workspace, team["owner"]
    credits.grant(workspace.id, 10_000, idempotency_key="t:funds", note="t")
    runs, auth = _column(client, workspace, owner, 501)
    resp = client.post(runs, json={"scope": "all", "confirm": True}, headers=auth)
    assert resp.status_code == 402
    assert resp.get_json()["error"]["message"] == (
        "The Free plan does not allow runs over more than 500 rows. Upgrade to Starter on the Billing page."
    )
    assert db.session.query(EnrichmentRun).count() == 0
    service.ensure_account(workspace.id).plan = "starter"
    db.session.flush()
    assert client.post(runs, json={"scope": "all", "confirm": True}, headers=auth).status_code == 202


def test_credits_owed_after_a_clawback_pause_every_run(client, db, team):
    workspace, owner = team.workspace, team["owner"]
    credits.grant(workspace.id, 10_000, idempotency_key="t:funds", note="t")
    service.ensure_account(workspace.id).credit_shortfall = 1_200
    db.session.flush()
    runs, auth = _column(client, workspace, owner, 3)
    resp = client.post(runs, json={"scope": "all", "confirm": True}, headers=auth)
    assert resp.status_code == 402
    assert "Runs are paused: 1,200 credits are owed" in resp.get_json()["error"]["message"]
