"""A push paced by HubSpot's rolling window: a whole window at once, the next as its slots free, no 429."""

from __future__ import annotations

import time

import httpx

from morket.crm import push_calls, tokens
from morket.crm.push_calls import Limiter, PushRecord, Sender, Target
from tests.crm.push_support import column, run_push, save, setup


def _rate_limited(crm) -> int:
    return crm.http.get(f"{crm.base}/_sandbox/hubspot/served").raise_for_status().json()["rate_limited"]


def test_a_push_under_a_small_window_never_runs_into_it(client, db, crm):
    workspace, owner, table = setup(client, db, crm, "hubspot", 1000)  # ten batch calls
    payload = {"object": "contacts", "key_field": "email", "key_column_id": column(table, "Email"),
               "fields": [{"column_id": column(table, "First name"), "field": "firstname"}]}  # fmt: skip
    save(workspace, owner, table, "hubspot", payload)  # reads the CRM's fields: two calls in the window
    db.session.commit()
    crm.configure("hubspot", window_limit=6)  # six calls per rolling ten seconds
    run = run_push(db, workspace, owner, table, "hubspot")
    assert run.status == "completed" and run.failed == 0, run.pause_reason
    assert crm.state("hubspot")["records"]["contacts"] == 1000
    # The fields' two calls are learnt from the answers' Remaining: not one call was refused.
    assert _rate_limited(crm) == 0


def test_calls_fill_the_window_at_once_and_the_next_window_as_it_frees(client, db, crm, app):
    workspace, _, _ = setup(client, db, crm, "hubspot", 0)
    from morket.crm import service

    connection_id = service.get_connection(workspace, "hubspot").id
    token = tokens.token_for_use(connection_id, app.config["MORKET"]).access_token
    db.session.commit()
    crm.configure("hubspot", window_limit=4)
    target = Target("hubspot", connection_id, "contacts", "email",
                    push_calls.base_url("hubspot", app.config["MORKET"], None), {"email": "email"})  # fmt: skip
    limiter = Limiter(app.extensions["morket_redis"], target)
    sent: list[float] = []
    with httpx.Client(timeout=10) as http:
        sender = Sender(http, target, token, limiter, deadline=time.monotonic() + 60)
        started = time.monotonic()
        for i in range(8):
            found = push_calls.upsert(sender, [PushRecord(i, f"p{i}@pace.example", {"firstname": f"P{i}"})])
            assert found[i].status == "ok", found[i].message
            sent.append(time.monotonic() - started)
    assert _rate_limited(crm) == 0 and sender.rate_limited == 0
    # Four calls at once (a bucket at the same average rate would space them 2.5 s apart, the
    # fourth 7.5 s on), then the next four once the first four's slots leave the window, ten
    # seconds on, again without spacing. The bounds leave room for slow calls on a busy machine.
    assert sent[3] < 7.0, sent
    assert sent[4] >= 10.0 and sent[7] - sent[4] < 7.0, sent
