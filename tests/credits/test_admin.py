"""The admin console's credits section: adjust with a reason, recorded with the admin, audited, once per form."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from morket.core.models import AuditEvent
from morket.credits import service
from morket.credits.models import LedgerEntry
from tests.admin.conftest import log_in


def _form(client, workspace_id: int) -> dict[str, str]:
    """The hidden fields of the adjustment form as the admin's workspace page renders them."""
    html = client.get(f"/admin/workspaces/{workspace_id}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    request_id = re.search(r'name="request_id" type="hidden" value="([0-9a-f]{32})"', html).group(1)
    return {"csrf_token": token, "request_id": request_id}


@pytest.fixture
def target(make_user, make_workspace):
    owner = make_user("owner@acme.test")
    return make_workspace("Acme", "acme", [(owner, "owner")])


def _entries(db, workspace) -> list[LedgerEntry]:
    return list(db.session.scalars(select(LedgerEntry).where(LedgerEntry.workspace_id == workspace.id)))


def test_an_admin_adds_credits_with_a_reason_once_per_form(db, admin_client, admin_user, target):
    form = _form(admin_client, target.id)
    data = {**form, "amount": "500", "note": "Pilot top-up"}
    resp = admin_client.post(f"/admin/workspaces/{target.id}/credits", data=data)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/admin/workspaces/{target.id}")
    resp = admin_client.post(f"/admin/workspaces/{target.id}/credits", data=data, follow_redirects=True)
    assert "applied already" in resp.get_data(as_text=True)
    assert service.balance(target.id) == 500
    [entry] = _entries(db, target)
    assert (entry.kind, entry.amount, entry.actor_id, entry.note) == ("adjustment", 500, admin_user.id, "Pilot top-up")
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "credits.adjusted")).one()
    assert (event.workspace_id, event.actor_id, event.data["amount"]) == (target.id, admin_user.id, 500)
    html = admin_client.get(f"/admin/workspaces/{target.id}").get_data(as_text=True)
    assert 'id="admin-credits-balance">500<' in html and "Pilot top-up" in html and "Rita Root" in html


def test_removing_more_than_the_balance_is_refused_and_writes_nothing(db, admin_client, target):
    service.grant(target.id, 10, idempotency_key="seed")
    db.session.commit()
    resp = admin_client.post(
        f"/admin/workspaces/{target.id}/credits", data={**_form(admin_client, target.id), "amount": "-11", "note": "x"}
    )
    assert resp.status_code == 422
    assert "Not enough credits" in resp.get_data(as_text=True)
    assert service.balance(target.id) == 10
    assert [e.kind for e in _entries(db, target)] == ["grant"]
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.action == "credits.adjusted")).all() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "0", "note": "nothing"}, "positive number to add"),
        ({"amount": "", "note": "nothing"}, "whole number of credits"),
        ({"amount": "ten", "note": "nothing"}, "Not a valid integer"),
        ({"amount": "5", "note": "   "}, "Say why"),
        ({"amount": "5", "note": "n" * 501}, "At most 500"),
        ({"amount": "99999999999", "note": "big"}, "Between"),
        ({"amount": "5", "note": "ok", "request_id": "nope"}, "Reload the page"),
    ],
)
def test_bad_input_gets_a_clear_error(db, admin_client, target, fields, message):
    resp = admin_client.post(
        f"/admin/workspaces/{target.id}/credits", data={**_form(admin_client, target.id), **fields}
    )
    assert resp.status_code == 422
    assert message in resp.get_data(as_text=True)
    assert _entries(db, target) == []


def test_an_unknown_workspace_is_a_404(admin_client, target):
    form = {**_form(admin_client, target.id), "amount": "5", "note": "x"}
    assert admin_client.post("/admin/workspaces/987654321/credits", data=form).status_code == 404


def test_workspace_owners_cannot_reach_it(client, db, target, make_user):
    owner = make_user("someone@acme.test")
    log_in(client, owner)
    resp = client.post(f"/admin/workspaces/{target.id}/credits", data={"amount": "5", "note": "x"})
    assert resp.status_code == 404
    assert _entries(db, target) == []
