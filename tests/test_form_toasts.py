"""Settings-like forms say a save worked in a toast: the flash on the page the save leads to, in the
shell's ``#toasts`` region (``_partials/toasts.html``), and no success toast when the save is refused.
Grid cell saves are the grid's own keyed toasts and status bar (tests/tables/test_save_toasts.py)."""

from __future__ import annotations

import html as html_lib
import re

import pytest

from morket.extensions import db
from tests.ai.column_support import ai, companies_table  # noqa: F401 - ai is a fixture
from tests.factories import csrf_token, login, workspace_with_owner

TOAST = re.compile(
    r'<div class="toast flash flash-(?P<kind>\w+)"[^>]*>\s*<span class="toast-text">(?P<text>[^<]*)</span>'
)


def _toasts(page: str) -> list[tuple[str, str]]:
    """The (kind, text) of every toast the page renders from its flash messages."""
    region = page.split('id="toasts"', 1)[1].split("</template>", 1)[0]
    return [(m["kind"], html_lib.unescape(m["text"])) for m in TOAST.finditer(region)]


def _success(page: str) -> list[str]:
    return [text for kind, text in _toasts(page) if kind == "success"]


@pytest.fixture
def owned(db):
    workspace, owner = workspace_with_owner(name="Toast Works", slug="toast-works")
    db.session.commit()
    return workspace, owner


def test_renaming_the_workspace_says_so_and_a_blank_name_does_not(client, owned):
    workspace, owner = owned
    login(client, owner)
    path = f"/w/{workspace.slug}/settings"
    refused = client.post(path, data={"csrf_token": csrf_token(client, path), "name": "   "})
    assert refused.status_code == 422 and _success(refused.get_data(as_text=True)) == []
    resp = client.post(
        path, data={"csrf_token": csrf_token(client, path), "name": "Toast Works EU"}, follow_redirects=True
    )
    assert resp.status_code == 200
    assert _success(resp.get_data(as_text=True)) == ["Workspace renamed."]


def test_an_invitation_says_to_whom_it_went(client, owned):
    workspace, owner = owned
    login(client, owner)
    path = f"/w/{workspace.slug}/members"
    form = {"csrf_token": csrf_token(client, path), "email": "ines@example.com", "role": "member"}
    resp = client.post(path, data=form, follow_redirects=True)
    assert resp.status_code == 200
    assert _success(resp.get_data(as_text=True)) == ["Invitation sent to ines@example.com. The link works for 7 days."]


def test_adding_and_saving_a_webhook_endpoint_say_so(client, owned):
    workspace, owner = owned
    login(client, owner)
    path = f"/w/{workspace.slug}/webhooks"
    form = {"csrf_token": csrf_token(client, path), "url": "https://93.184.216.34/hook", "event_types": ["row.created"]}
    added = client.post(path, data={**form, "enabled": "y"})
    assert added.status_code == 200, added.get_data(as_text=True)[-1500:]
    assert _success(added.get_data(as_text=True)) == [
        "Added the endpoint https://93.184.216.34/hook. Copy its signing secret now: it is shown only once."
    ]
    from morket.webhooks.models import WebhookEndpoint

    endpoint = db.session.query(WebhookEndpoint).filter_by(workspace_id=workspace.id).one()
    page = f"{path}/{endpoint.id}"
    bad = client.post(page, data={**form, "csrf_token": csrf_token(client, page), "url": "not a url"})
    assert bad.status_code == 422 and _success(bad.get_data(as_text=True)) == []
    saved = client.post(
        page, data={**form, "csrf_token": csrf_token(client, page), "description": "CRM"}, follow_redirects=True
    )
    assert saved.status_code == 200
    assert _success(saved.get_data(as_text=True)) == ["Saved the endpoint."]


def test_saving_a_table_view_says_which(client, owned):
    from morket.tables import service

    workspace, owner = owned
    table = service.create_table(workspace, owner, "Accounts", columns=[{"name": "Company", "type": "text"}])
    default = service.list_views(workspace, table)[0]
    db.session.commit()
    login(client, owner)
    page = f"/w/{workspace.slug}/tables/{table.id}"
    form = {"csrf_token": csrf_token(client, page), "name": "Everyone", "as_new": "1", "f_op": "and"}
    resp = client.post(f"{page}/views/{default.id}", data=form, follow_redirects=True)
    assert resp.status_code == 200
    assert _success(resp.get_data(as_text=True)) == ["Saved the view “Everyone”."]


def test_adding_and_saving_an_ai_column_say_so(client, db, ai):  # noqa: F811
    workspace, owner = workspace_with_owner(name="AI Toasts", slug="ai-toasts")
    table = companies_table(workspace, owner, 3)
    db.session.commit()
    login(client, owner)
    new = f"/w/{workspace.slug}/tables/{table.id}/ai/new"
    form = {"name": "Summary", "prompt": "Sum up {{Description}}", "output_type": "text", "model_choice": "|",
            "temperature": "0", "max_tokens": "64"}  # fmt: skip
    refused = client.post(new, data={**form, "prompt": "Sum up {{Nope}}", "csrf_token": csrf_token(client, new)})
    assert refused.status_code == 422 and _success(refused.get_data(as_text=True)) == []
    added = client.post(new, data={**form, "csrf_token": csrf_token(client, new)})
    assert added.status_code == 303
    page = added.headers["Location"]
    assert _success(client.get(page).get_data(as_text=True)) == [
        "Added the AI column “Summary”. Try it on the first rows, then run it."
    ]
    saved = client.post(page, data={**form, "name": "Short summary", "csrf_token": csrf_token(client, page)})
    assert saved.status_code == 303
    assert _success(client.get(page).get_data(as_text=True)) == [
        "Saved the AI column “Short summary”. Cells already answered keep their answers; run it to fill the rest."
    ]
