"""The webhooks page: managers only, the secret shown once, empty state, tenant isolation, redelivery."""

from __future__ import annotations

from sqlalchemy import select

from morket.webhooks import service
from morket.webhooks.models import WebhookDelivery, WebhookEndpoint
from tests.factories import csrf_token, login


def _page(client, team):
    return f"/w/{team.workspace.slug}/webhooks"


def test_empty_state_and_add_shows_secret_once(client, db, team, hook_settings, receiver):
    login(client, team["admin"])
    resp = client.get(_page(client, team))
    assert resp.status_code == 200, resp.get_data(as_text=True)[-3000:]
    html = resp.get_data(as_text=True)
    assert "No webhook endpoints yet" in html and "sends your own system an HTTP POST" in html
    assert resp.headers["Cache-Control"] == "no-store"
    token = csrf_token(client, _page(client, team))
    resp = client.post(
        _page(client, team),
        data={
            "csrf_token": token,
            "url": receiver.url,
            "description": "CRM sync",
            "event_types": ["row.created", "import.finished"],
            "enabled": "y",
        },
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)[-2000:]
    html = resp.get_data(as_text=True)
    endpoint = db.session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.workspace_id == team.workspace.id))
    secret = service.signing_secrets(endpoint)[0]
    assert secret in html and "only this once" in html
    assert endpoint.event_types == ["row.created", "import.finished"]
    # Never again: not on the list, not on the endpoint's page.
    for path in (_page(client, team), f"{_page(client, team)}/{endpoint.id}"):
        again = client.get(path).get_data(as_text=True)
        assert secret not in again and secret.split("_", 1)[1] not in again
        assert receiver.url in again


def test_bad_url_is_a_form_error_and_writes_nothing(client, db, team, hook_settings):
    login(client, team["owner"])
    token = csrf_token(client, _page(client, team))
    resp = client.post(
        _page(client, team),
        data={"csrf_token": token, "url": "http://10.0.0.8/hook", "event_types": ["row.created"]},
    )
    assert resp.status_code == 422
    assert "https" in resp.get_data(as_text=True) or "loopback" in resp.get_data(as_text=True)
    resp = client.post(_page(client, team), data={"csrf_token": token, "url": "https://93.184.216.34/h"})
    assert resp.status_code == 422 and "Choose at least one event" in resp.get_data(as_text=True)
    assert db.session.scalar(select(WebhookEndpoint)) is None


def test_members_and_viewers_see_nothing(client, db, team, hook_settings):
    endpoint, _ = service.create_endpoint(team.workspace, team["admin"], "https://93.184.216.34/h", ["row.created"])
    db.session.flush()
    for role in ("member", "viewer", "billing_admin"):
        login(client, team[role])
        assert client.get(_page(client, team)).status_code == 403
        assert client.get(f"{_page(client, team)}/{endpoint.id}").status_code == 403
        nav = client.get(f"/w/{team.workspace.slug}").get_data(as_text=True)
        assert "/webhooks" not in nav


def test_other_workspace_gets_404(client, db, team, stranger, hook_settings):
    endpoint, _ = service.create_endpoint(team.workspace, team["admin"], "https://93.184.216.34/h", ["row.created"])
    delivery = service.send_test_event(team.workspace, team["admin"], endpoint)
    db.session.flush()
    login(client, stranger["owner"])
    token = csrf_token(client, f"/w/{stranger.workspace.slug}/webhooks")
    base = f"/w/{stranger.workspace.slug}/webhooks"
    assert client.get(f"{base}/{endpoint.id}").status_code == 404
    for path in (f"{base}/{endpoint.id}/rotate", f"{base}/{endpoint.id}/delete", f"{base}/{endpoint.id}/test"):
        assert client.post(path, data={"csrf_token": token}).status_code == 404
    assert client.post(f"{base}/deliveries/{delivery.id}/redeliver", data={"csrf_token": token}).status_code == 404
    assert db.session.get(WebhookEndpoint, endpoint.id) is not None


def test_rotate_test_and_redeliver_from_the_page(client, db, team, hook_settings, receiver, run_jobs):
    endpoint, first = service.create_endpoint(team.workspace, team["admin"], receiver.url, ["row.created"])
    db.session.flush()
    login(client, team["admin"])
    base = f"{_page(client, team)}/{endpoint.id}"
    token = csrf_token(client, base)
    resp = client.post(f"{base}/rotate", data={"csrf_token": token})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "New signing secret" in html and "previous secret also signs" in html
    assert first not in html
    resp = client.post(f"{base}/test", data={"csrf_token": token})
    assert resp.status_code == 303
    run_jobs()
    assert len(receiver.received) == 1 and receiver.received[0].json["type"] == "webhook.test"
    html = client.get(base).get_data(as_text=True)
    assert "Delivered" in html and receiver.received[0].headers["webhook-id"] in html
    delivery = db.session.scalar(select(WebhookDelivery))
    resp = client.post(f"{base.rsplit('/', 1)[0]}/deliveries/{delivery.id}/redeliver", data={"csrf_token": token})
    assert resp.status_code == 303
    run_jobs()
    assert len(receiver.received) == 2
    assert receiver.received[0].headers["webhook-id"] == receiver.received[1].headers["webhook-id"]
    endpoint_id = endpoint.id
    resp = client.post(f"{base}/delete", data={"csrf_token": token})
    assert resp.status_code == 303
    assert db.session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id)) is None


def test_test_events_are_rate_limited(client, db, team, hook_settings, app, monkeypatch):
    monkeypatch.setitem(app.config, "RATELIMIT_ENABLED", True)
    endpoint, _ = service.create_endpoint(team.workspace, team["admin"], "https://93.184.216.34/h", ["row.created"])
    db.session.flush()
    login(client, team["admin"])
    base = f"{_page(client, team)}/{endpoint.id}"
    token = csrf_token(client, base)
    answers = [client.post(f"{base}/test", data={"csrf_token": token}).status_code for _ in range(22)]
    assert answers[:20] == [303] * 20 and answers[-1] == 429
