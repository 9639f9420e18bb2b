"""Billing fixtures: Stripe settings on the test app, a workspace with every role, signed events."""

from __future__ import annotations

import json
import time
from itertools import count

import pytest
import stripe

from morket.core.roles import ROLES
from tests.factories import MembershipFactory, workspace_with_owner

WEBHOOK_SECRET = "whsec_morket_billing_tests_0123456789"
WEBHOOK_PATH = "/billing/stripe/webhook"
_ids = count(1)


@pytest.fixture
def stripe_settings(app, monkeypatch):
    """The webhook secret and a secret key on the app (the API base is the sandbox's, when used)."""
    settings = app.config["MORKET"]
    monkeypatch.setitem(settings, "STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setitem(settings, "STRIPE_SECRET_KEY", settings.get("STRIPE_SECRET_KEY") or "sk_test_morket_tests")
    return settings


@pytest.fixture
def team(db):
    """A workspace with one user per role: ``team[role]`` is the user, ``team.workspace`` the workspace."""

    class Team(dict):
        workspace = None

    workspace, owner = workspace_with_owner(name="Billing Co")
    found = Team(owner=owner)
    found.workspace = workspace
    for role in ROLES:
        if role != "owner":
            found[role] = MembershipFactory(workspace=workspace, role=role).user
    db.session.flush()
    return found


def event_body(event_type: str, obj: dict, *, event_id: str | None = None) -> bytes:
    """A Stripe event as Stripe sends it (the object is the event's copy, which handlers re-read)."""
    return json.dumps(
        {
            "id": event_id or f"evt_test_{next(_ids)}_{int(time.time() * 1000)}",
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
            "data": {"object": obj},
        }
    ).encode()


def sign(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header for ``body`` (Stripe's scheme: t=<ts>,v1=<hmac of "ts.body">)."""
    return stripe.WebhookSignature.generate_signature_header(body.decode(), secret, timestamp=timestamp)


def post_event(client, body: bytes, header: str | None = "sign"):
    headers = {"Content-Type": "application/json"}
    if header == "sign":
        header = sign(body)
    if header is not None:
        headers["Stripe-Signature"] = header
    return client.post(WEBHOOK_PATH, data=body, headers=headers)
