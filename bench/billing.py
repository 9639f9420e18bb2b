"""Stripe webhook bench: N sandbox events, 30% of them sent twice, shuffled, through Morket's endpoint.

Usage: ``python -m bench.billing --events 1000 [--duplicates 0.3] [--seed 7]``

The Stripe sandbox runs in a process of its own (its rate limit lifted, its webhooks kept, not
sent). Fresh workspaces each buy a plan through Checkout (``invoice.*``,
``customer.subscription.created``, ``checkout.session.completed``…), set it to cancel at the
period end (``customer.subscription.updated``) and buy credit packs
(``checkout.session.completed`` in payment mode, ``charge.succeeded``…), all paid on the
sandbox's checkout. The events the sandbox recorded are read back (``GET /v1/events``), cut to
the unique count, a share of them repeated and the whole shuffled; each body is then signed
(Stripe's scheme) and POSTed to ``/billing/stripe/webhook`` through the app's test client: the
real view, ``construct_event``, the claim in ``billing_events`` and the handlers, which read the
current session, invoice or subscription from the sandbox and grant through the ledger.

``figures.grants_mismatch`` is the credits the ledger granted these workspaces from Stripe
minus the credits the included events should grant (each paid pack checkout once, each paid
plan invoice once): 0 means every payment counted exactly once whatever the order and the
repeats. ``ratios.process_over_bare`` is Morket's time per event over a bare loop's, measured
in the same run on the same signed bodies: ``construct_event`` and one ``INSERT … ON CONFLICT
DO NOTHING`` of the event into a scratch table, committed per event. The two are interleaved in
blocks of ``BLOCK`` events (the bare loop first in one block, Morket first in the next), so a
change in the machine's load during the run weighs on both alike.

Runs in the bench database (``MORKET_BENCH_DATABASE_URL``, else ``morket_bench_billing`` on
127.0.0.1:5432, created and migrated when missing). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from typing import Any

import httpx
import stripe
from sqlalchemy import func, select, text

from bench.common import bench_workspace, log, migrated_app

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/morket_bench_billing"
KEY = "sk_test_bench_billing"
SECRET = "whsec_bench_billing_0123456789"  # noqa: S105 - the sandbox's signing secret
WEBHOOK_PATH = "/billing/stripe/webhook"
PACKS_PER_WORKSPACE = 3
EVENTS_PER_WORKSPACE = 18  # a plan checkout (8), its update (1), three packs (3 each)
BLOCK = 50  # events per block when the bare loop and Morket take turns
GRANTING = ("checkout.session.completed", "checkout.session.async_payment_succeeded", "invoice.paid",
            "invoice.payment_succeeded")  # fmt: skip


def _sandbox() -> tuple[subprocess.Popen, str]:
    from morket.devservices import free_port, port_answers

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "morket.providers.sandboxes", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not port_answers("127.0.0.1", port):
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the sandbox did not start")
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}"
    httpx.post(f"{base}/_sandbox/config", json={"provider": "stripe", "rate": 1e6, "burst": 1e6}).raise_for_status()
    control = f"{base}/_sandbox/stripe"
    httpx.post(f"{control}/reset").raise_for_status()
    httpx.post(f"{control}/config", json={"webhook_url": None, "webhook_secret": SECRET}).raise_for_status()
    return server, base


def _buy(app, base: str, workspaces: int, stamp: int) -> list[int]:
    """``workspaces`` fresh workspaces, each subscribed (then set to cancel) and buying packs; their ids."""
    from morket.billing import plans, service
    from morket.extensions import db

    control = httpx.Client(base_url=f"{base}/_sandbox/stripe", timeout=30)
    plan_keys = [p.key for p in plans.PLANS.values() if p.setting]
    pack_keys = list(plans.PACKS)
    ids = []
    with app.app_context():
        client = service.stripe_client()
        for i in range(workspaces):
            workspace, owner = bench_workspace(f"bench-billing-{stamp}-{i}", f"Billing bench {i}")
            ids.append(workspace.id)
            back = "https://morket.invalid/billing"
            started = service.start_checkout(workspace, owner, plan_key=plan_keys[i % len(plan_keys)],
                                             success_url=back, cancel_url=back)  # fmt: skip
            db.session.commit()
            control.post(f"checkout/{started.session_id}/complete", json={}).raise_for_status()
            session = client.v1.checkout.sessions.retrieve(started.session_id)
            client.v1.subscriptions.update(str(session.subscription), params={"cancel_at_period_end": True})
            for n in range(PACKS_PER_WORKSPACE):
                started = service.start_checkout(workspace, owner, pack_key=pack_keys[n % len(pack_keys)],
                                                 success_url=back, cancel_url=back)  # fmt: skip
                db.session.commit()
                control.post(f"checkout/{started.session_id}/complete", json={}).raise_for_status()
        db.session.remove()
    control.close()
    return ids


def _recorded(base: str) -> list[dict[str, Any]]:
    """Every event the sandbox recorded, oldest first, as Stripe would send it."""
    found: list[dict[str, Any]] = []
    after = None
    with httpx.Client(base_url=f"{base}/stripe", headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as api:
        while True:
            params: dict[str, Any] = {"limit": 100}
            if after:
                params["starting_after"] = after
            page = api.get("/v1/events", params=params).json()
            found.extend(page["data"])
            if not page["has_more"]:
                break
            after = page["data"][-1]["id"]
    return found[::-1]


def _expected_grants(events: list[dict[str, Any]]) -> int:
    """Credits the included events should grant: each paid pack session once, each paid plan invoice once."""
    from morket.billing import plans

    packs: set[str] = set()
    invoices: dict[str, int] = {}
    for event in events:
        obj = event["data"]["object"]
        if event["type"] in GRANTING[:2] and obj.get("mode") == "payment" and obj.get("payment_status") == "paid":
            packs.add(obj["id"])
        elif event["type"] in GRANTING[2:]:
            chosen = plans.plan_for_price(_invoice_price(obj))
            invoices[obj["id"]] = chosen.monthly_credits if chosen else 0
    return sum(_PACK_CREDITS[session_id] for session_id in packs) + sum(invoices.values())


_PACK_CREDITS: dict[str, int] = {}


def _invoice_price(inv: dict[str, Any]) -> str | None:
    line = (inv.get("lines") or {}).get("data", [{}])[0]
    details = ((line.get("pricing") or {}).get("price_details") or {}).get("price")
    return details or (line.get("price") or {}).get("id") or (line.get("plan") or {}).get("id")


def _pack_sessions(base: str, events: list[dict[str, Any]]) -> None:
    """Note each paid pack session's credits (its line item, as the sandbox has it)."""
    from morket.billing import plans

    with httpx.Client(base_url=f"{base}/stripe", headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as api:
        for event in events:
            obj = event["data"]["object"]
            if event["type"] == "checkout.session.completed" and obj.get("mode") == "payment":
                line = api.get(f"/v1/checkout/sessions/{obj['id']}/line_items").json()["data"][0]
                pack = plans.pack_for_price(line["price"]["id"])
                _PACK_CREDITS[obj["id"]] = (pack.credits if pack else 0) * int(line.get("quantity") or 1)


def _sign(body: bytes) -> str:
    return stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET)


def _morket(client, bodies: list[bytes], statuses: dict[str, int]) -> float:
    """POST each signed body to the webhook endpoint through the app's test client; the time taken."""
    started = time.perf_counter()
    for body in bodies:
        resp = client.post(WEBHOOK_PATH, data=body,
                           headers={"Content-Type": "application/json", "Stripe-Signature": _sign(body)})  # fmt: skip
        key = resp.get_json().get("status") if resp.status_code == 200 else f"http_{resp.status_code}"
        statuses[key] = statuses.get(key, 0) + 1
    return time.perf_counter() - started


_BARE_INSERT = text(
    "INSERT INTO bench_billing_bare (id, type, body) VALUES (:id, :type, CAST(:body AS jsonb))"
    " ON CONFLICT (id) DO NOTHING"
)


def _bare(conn, bodies: list[bytes]) -> float:
    """construct_event and one INSERT … ON CONFLICT DO NOTHING per event, committed per event."""
    started = time.perf_counter()
    for body in bodies:
        event = stripe.Webhook.construct_event(body, _sign(body), SECRET, tolerance=300)
        conn.execute(_BARE_INSERT, {"id": event.id, "type": event.type, "body": body.decode()})
        conn.commit()
    return time.perf_counter() - started


def _measure(app, bodies: list[bytes]) -> tuple[float, float, dict[str, int]]:
    """Morket's time and the bare loop's over ``bodies``, taking turns block by block."""
    from morket.extensions import db

    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            conn.execute(
                text("CREATE TABLE IF NOT EXISTS bench_billing_bare (id text PRIMARY KEY, type text, body jsonb)")
            )
            conn.execute(text("TRUNCATE bench_billing_bare"))
        bare_conn = engine.connect()
    client = app.test_client()
    statuses: dict[str, int] = {}
    morket_s = bare_s = 0.0
    try:
        for n, at in enumerate(range(0, len(bodies), BLOCK)):
            block = bodies[at : at + BLOCK]
            if n % 2 == 0:
                bare_s += _bare(bare_conn, block)
                morket_s += _morket(client, block, statuses)
            else:
                morket_s += _morket(client, block, statuses)
                bare_s += _bare(bare_conn, block)
    finally:
        bare_conn.close()
    return morket_s, bare_s, statuses


def _ledger_grants(app, workspace_ids: list[int]) -> int:
    from morket.credits.models import LedgerEntry
    from morket.extensions import db

    with app.app_context():
        total = db.session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
                LedgerEntry.workspace_id.in_(workspace_ids),
                LedgerEntry.kind == "grant",
                LedgerEntry.idempotency_key.like("stripe:%"),
            )
        )
        db.session.remove()
        return int(total or 0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.billing", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, required=True, help="events sent, duplicates included")
    parser.add_argument("--duplicates", type=float, default=0.3, help="share of the sent events that are repeats")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.events < 2 or not 0 <= args.duplicates < 1:
        parser.error("--events must be at least 2 and --duplicates in [0, 1)")
    repeats = round(args.events * args.duplicates)
    unique = args.events - repeats
    rng = random.Random(args.seed)

    server, base = _sandbox()
    try:
        app, _ = migrated_app(DEFAULT_URL)
        app.config["MORKET"].update(
            {"STRIPE_SECRET_KEY": KEY, "STRIPE_WEBHOOK_SECRET": SECRET, "STRIPE_API_BASE": f"{base}/stripe"}
        )
        stamp = int(time.time())
        started = time.perf_counter()
        workspace_ids = _buy(app, base, math.ceil(unique / EVENTS_PER_WORKSPACE) + 1, stamp)
        recorded = _recorded(base)
        log(f"setup: {len(workspace_ids)} workspaces, {len(recorded)} events in {time.perf_counter() - started:.1f} s")
        if len(recorded) < unique:
            raise SystemExit(f"the sandbox recorded {len(recorded)} events, fewer than {unique}")
        # Keep whole workspaces' worth from the start, cut at the unique count: some payments lose events.
        included = recorded[:unique]
        with app.app_context():
            _pack_sessions(base, included)
            expected = _expected_grants(included)
        sent = included + [rng.choice(included) for _ in range(repeats)]
        rng.shuffle(sent)
        bodies = [json.dumps(event).encode() for event in sent]

        morket_s, bare_s, statuses = _measure(app, bodies)
        log(f"morket {morket_s:.2f} s, bare {bare_s:.2f} s for {len(bodies)} events (in turns of {BLOCK})")
        granted = _ledger_grants(app, workspace_ids)
    finally:
        server.terminate()
        server.wait(timeout=10)

    figures: dict[str, Any] = {
        "events": len(bodies),
        "unique_events": unique,
        "duplicates_sent": repeats,
        "statuses": statuses,
        "process_ms_each": round(1000 * morket_s / len(bodies), 3),
        "bare_ms_each": round(1000 * bare_s / len(bodies), 3),
        "events_per_s": round(len(bodies) / morket_s, 1),
        "grants_expected": expected,
        "grants_ledger": granted,
        "grants_mismatch": granted - expected,
    }
    ratios = {"process_over_bare": round(morket_s / bare_s, 3)}
    result = {"figures": figures, "ratios": ratios}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
