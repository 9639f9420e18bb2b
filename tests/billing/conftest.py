"""Billing fixtures: Stripe settings on the test app, a workspace with every role, signed events."""

from __future__ import annotations

import json
import time
from itertools import count

import pytest
import stripe

from morket.core.roles import ROLES
from tests.admin.conftest import admin_user, make_user  # noqa: F401 - the console's fixtures, reused here
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


class StripeRelay:
    """The Stripe sandbox with its webhooks caught by a receiver and handed to the app by the test.

    The app runs inside the test's transaction, so the events the sandbox signs and sends are
    received by a loopback server and then posted, byte for byte with Stripe's own signature
    header, through the test client (``deliver``). ``deliver`` may hand over everything again,
    as Stripe does when it resends.
    """

    def __init__(self, base: str, sink) -> None:
        import httpx

        self.api = f"{base}/stripe"
        self.control = httpx.Client(base_url=f"{base}/_sandbox/stripe", timeout=15)
        self.sink = sink
        self.delivered = 0
        self.client = stripe.StripeClient(
            "sk_test_morket_billing_tests", base_addresses={"api": self.api}, max_network_retries=0
        )

    def post(self, path: str, **body):
        resp = self.control.post(path, json=body)
        assert resp.status_code < 300, resp.text
        return resp.json()

    def received(self) -> list[dict]:
        assert self.post("webhooks/wait", timeout=15)["idle"]
        with self.sink.lock:
            return list(self.sink.received)

    def deliver(self, client, *, again: bool = False, reverse: bool = False) -> list:
        """Post the events received since the last call (all of them with ``again``) to the app."""
        found = self.received()
        batch = found if again else found[self.delivered :]
        self.delivered = len(found)
        if reverse:
            batch = batch[::-1]
        answers = []
        for item in batch:
            resp = client.post(
                WEBHOOK_PATH,
                data=item["body"],
                headers={"Content-Type": "application/json", "Stripe-Signature": item["headers"]["Stripe-Signature"]},
            )
            answers.append((json.loads(item["body"])["type"], resp.status_code, resp.get_json()))
        return answers

    def event_ids(self) -> list[str]:
        return [json.loads(item["body"])["id"] for item in self.received()]


@pytest.fixture
def stripe_relay(app, sandbox_server, stripe_settings, monkeypatch):
    """The sandbox's Stripe (reset), the app pointed at it, its webhooks relayed by ``deliver``."""
    from tests.support.sandbox import WebhookSink

    sink = WebhookSink().start()
    relay = StripeRelay(sandbox_server.base, sink)
    relay.post("reset")
    relay.post("config", webhook_url=sink.url(WEBHOOK_PATH), webhook_secret=WEBHOOK_SECRET)
    monkeypatch.setitem(app.config["MORKET"], "STRIPE_API_BASE", relay.api)
    monkeypatch.setitem(app.config["MORKET"], "STRIPE_SECRET_KEY", "sk_test_morket_billing_tests")
    yield relay
    relay.post("reset")
    sink.stop()
    relay.control.close()


def pay_on_page(url: str, card: str = "4242424242424242"):
    """Submit the sandbox's hosted checkout page as a browser would; return its answer (303 when paid)."""
    import httpx

    page = httpx.get(url)
    assert page.status_code == 200 and f'value="{card}"' in page.text
    return httpx.post(url, data={"email": "buyer@example.com", "card": card, "action": "pay"})


@pytest.fixture
def stripe_env(monkeypatch, sandbox_server):
    """For a live server (made after this), which reads its Stripe settings from the environment:
    the variables set, the sandbox's Stripe reset; yields the sandbox's Stripe control client."""
    import httpx

    monkeypatch.setenv("MORKET_STRIPE_SECRET_KEY", "sk_test_morket_browser")
    monkeypatch.setenv("MORKET_STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("MORKET_STRIPE_API_BASE", f"{sandbox_server.base}/stripe")
    control = httpx.Client(base_url=f"{sandbox_server.base}/_sandbox/stripe", timeout=15)
    control.post("reset").raise_for_status()
    yield control
    control.post("reset").raise_for_status()
    control.close()
