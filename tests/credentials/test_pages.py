"""The credentials page: managers add and delete keys and see them masked; nobody else sees the page."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from morket.core.models import AuditEvent
from morket.credentials import service
from morket.credentials.models import ProviderCredential
from tests.factories import csrf_token, login

SECRET = "sk-test-apollo-93c1d07e44aa"


def _page(slug: str) -> str:
    return f"/w/{slug}/credentials"


def _add(client, slug: str, **form):
    token = csrf_token(client, _page(slug))
    return client.post(_page(slug), data={"csrf_token": token, **form})


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_manager_adds_a_key_and_sees_it_masked_only(client, db, team, role):
    login(client, team[role])
    page = client.get(_page(team.workspace.slug))
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert 'type="password"' in html and 'name="secret"' in html
    resp = _add(client, team.workspace.slug, provider="apollo", label="Outbound team", secret=SECRET)
    assert resp.status_code == 303 and resp.headers["Location"].endswith(_page(team.workspace.slug))
    html = client.get(_page(team.workspace.slug)).get_data(as_text=True)
    assert "Saved the Apollo key ••••44aa" in html
    assert "Outbound team" in html and "<code>••••44aa</code>" in html
    assert SECRET not in html
    [credential] = service.list_credentials(team.workspace)
    assert (credential.provider, credential.created_by_id) == ("apollo", team[role].id)
    assert db.session.scalar(select(func.count()).where(AuditEvent.action == "credential.created")) == 1


def test_nav_links_credentials_for_managers_only(client, new_client, db, team):
    login(client, team["admin"])
    assert f'href="{_page(team.workspace.slug)}"' in client.get(f"/w/{team.workspace.slug}/").get_data(as_text=True)
    for role in ("member", "viewer", "billing_admin"):
        other = new_client()
        login(other, team[role])
        html = other.get(f"/w/{team.workspace.slug}/").get_data(as_text=True)
        assert f'href="{_page(team.workspace.slug)}"' not in html, role


@pytest.mark.parametrize("role", ["member", "viewer", "billing_admin"])
def test_other_roles_get_403_and_change_nothing(client, db, team, role):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    login(client, team[role])
    assert client.get(_page(team.workspace.slug)).status_code == 403
    # A valid CSRF token from a page this user may open: the refusal must come from the role check.
    token = csrf_token(client, f"/w/{team.workspace.slug}/")
    resp = client.post(_page(team.workspace.slug), data={"csrf_token": token, "provider": "apollo", "secret": SECRET})
    assert resp.status_code == 403
    resp = client.post(f"{_page(team.workspace.slug)}/{credential.id}/delete", data={"csrf_token": token})
    assert resp.status_code == 403
    assert [c.provider for c in service.list_credentials(team.workspace)] == ["hunter"]


def test_another_workspace_gets_404_for_the_page_and_the_key(client, db, team, stranger):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    login(client, stranger["owner"])
    assert client.get(_page(team.workspace.slug)).status_code == 404
    token = csrf_token(client, _page(stranger.workspace.slug))
    # Its own page, another workspace's credential id: 404 and the key stays.
    resp = client.post(f"{_page(stranger.workspace.slug)}/{credential.id}/delete", data={"csrf_token": token})
    assert resp.status_code == 404
    resp = client.post(f"{_page(team.workspace.slug)}/{credential.id}/delete", data={"csrf_token": token})
    assert resp.status_code == 404
    assert len(service.list_credentials(team.workspace)) == 1


def test_anonymous_visitor_is_sent_to_log_in(client, db, team):
    resp = client.get(_page(team.workspace.slug))
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"provider": "hunter", "secret": ""}, "Enter the API key."),
        ({"provider": "hunter", "secret": "sk-test-has space-1234"}, "no spaces, line breaks"),
        ({"provider": "hunter", "secret": "sk-1"}, "at least 8 characters"),
        ({"provider": "nope", "secret": SECRET}, "Not a valid choice"),
        ({"provider": "hunter", "secret": SECRET, "label": "x" * 121}, "Use at most 120 characters."),
    ],
)
def test_bad_input_is_a_422_with_a_message_and_the_key_is_not_echoed(client, db, team, form, message):
    login(client, team["owner"])
    resp = _add(client, team.workspace.slug, **form)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and message in html
    assert not form["secret"] or form["secret"] not in html
    assert db.session.scalar(select(func.count()).select_from(ProviderCredential)) == 0


def test_second_key_for_a_provider_is_a_409_naming_the_stored_one(client, db, team):
    service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    login(client, team["owner"])
    resp = _add(client, team.workspace.slug, provider="hunter", secret="sk-test-second-key-5678")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 409 and "already has a Hunter key (••••44aa)" in html
    assert "second-key" not in html


def test_delete_with_confirmation_removes_the_key(client, db, team):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    login(client, team["admin"])
    html = client.get(_page(team.workspace.slug)).get_data(as_text=True)
    assert 'data-confirm="Delete the Hunter key ••••44aa?' in html
    token = csrf_token(client, _page(team.workspace.slug))
    resp = client.post(f"{_page(team.workspace.slug)}/{credential.id}/delete", data={"csrf_token": token})
    assert resp.status_code == 303
    html = client.get(_page(team.workspace.slug)).get_data(as_text=True)
    assert "Deleted the Hunter key ••••44aa" in html and "No provider keys yet" in html
    assert service.list_credentials(team.workspace) == []
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "credential.deleted"))
    assert event.actor_id == team["admin"].id


def test_forms_without_csrf_are_refused(client, db, team):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    login(client, team["owner"])
    assert client.post(_page(team.workspace.slug), data={"provider": "apollo", "secret": SECRET}).status_code == 400
    assert client.post(f"{_page(team.workspace.slug)}/{credential.id}/delete").status_code == 400
    assert len(service.list_credentials(team.workspace)) == 1
