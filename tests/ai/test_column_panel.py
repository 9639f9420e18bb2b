"""A new AI column set up in the enrichment drawer: the catalogue's AI card opens the form in the drawer,
a refusal is shown there, a save sends htmx on to the column's page (where it is tried and run); the
full page stays the fallback. Viewers get 403, another workspace 404, the form needs its CSRF token."""

from __future__ import annotations

import re

import pytest

from morket.extensions import db
from morket.workspaces.models import Membership
from tests.ai.column_support import ai, companies_table  # noqa: F401 - ai is a fixture
from tests.credentials.conftest import make_team
from tests.enrichment.test_engine_support import grant
from tests.factories import UserFactory, csrf_token, login


@pytest.fixture
def team(db, ai):  # noqa: F811
    team = make_team("AI drawer")
    grant(team.workspace, 5_000)
    team.table = companies_table(team.workspace, team.users["owner"], 6)
    db.session.commit()
    return team


def _urls(team) -> tuple[str, str, str]:
    base = f"/w/{team.workspace.slug}/tables/{team.table.id}"
    return f"{base}/enrichment/panel", f"{base}/ai/panel", f"{base}/ai/new"


def test_the_ai_card_opens_the_form_in_the_drawer_and_the_page_stays_the_fallback(client, team):
    catalogue, panel, page = _urls(team)
    login(client, team.users["member"])
    cards = client.get(catalogue, headers={"HX-Request": "true"}).get_data(as_text=True)
    card = re.search(r'<a class="enrich-card-link" href="([^"]+)" hx-get="([^"]+)"[^>]*id="enrich-ai-link">', cards)
    assert card is not None and card.groups() == (page, panel)

    fragment = client.get(panel, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment
    assert f'hx-post="{page}"' in fragment and 'name="panel" value="1"' in fragment
    assert "<code>{{Description}}</code>" in fragment  # the columns a prompt can name
    # Without htmx the same form is a page of its own.
    whole = client.get(panel).get_data(as_text=True)
    assert "<html" in whole and 'id="ai-panel-form"' in whole


def test_a_drawer_save_goes_on_to_the_columns_page_and_a_refusal_stays_in_the_drawer(client, team):
    from morket.ai import columns
    from morket.tables import service as tables

    _catalogue, panel, page = _urls(team)
    login(client, team.users["owner"])
    token = csrf_token(client, page)
    form = {"csrf_token": token, "panel": "1", "name": "Summary", "prompt": "Sum up {{Description}}",
            "output_type": "text", "model_choice": "|", "temperature": "0", "max_tokens": "256"}  # fmt: skip
    before = len(tables.get_table_or_404(team.workspace, team.table.id).live_columns)

    bad = client.post(page, data={**form, "prompt": "Sum up {{Nope}}"}, headers={"HX-Request": "true"})
    assert bad.status_code == 422
    html = bad.get_data(as_text=True)
    assert "<html" not in html and 'id="ai-panel-form"' in html
    error = re.search(r'<p class="flash flash-error" role="alert" id="enrich-error">([^<]+)</p>', html)
    assert error is not None and "not a column of this table" in error.group(1)
    assert "Sum up {{Nope}}" in html  # what was typed is kept
    db.session.expire_all()
    assert len(tables.get_table_or_404(team.workspace, team.table.id).live_columns) == before

    saved = client.post(page, data=form, headers={"HX-Request": "true"})
    assert saved.status_code == 204
    target = saved.headers["HX-Redirect"]
    assert re.fullmatch(rf"/w/{team.workspace.slug}/tables/{team.table.id}/ai/\d+", target)
    column = columns.get_ai_column_or_404(team.workspace, team.table, int(target.rsplit("/", 1)[1]))
    assert column.name == "Summary"
    assert "Added the AI column “Summary”" in client.get(target).get_data(as_text=True)


def test_viewers_get_403_strangers_404_and_the_form_needs_its_token(client, team):
    _catalogue, panel, page = _urls(team)
    viewer = UserFactory()
    db.session.add(Membership(workspace_id=team.workspace.id, user_id=viewer.id, role="viewer"))
    db.session.commit()
    login(client, viewer)
    assert client.get(panel, headers={"HX-Request": "true"}).status_code == 403
    stranger = make_team("Not theirs")
    login(client, stranger.users["owner"])
    assert client.get(panel, headers={"HX-Request": "true"}).status_code == 404
    login(client, team.users["owner"])
    no_token = {"panel": "1", "name": "X", "prompt": "Sum up {{Description}}", "output_type": "text"}
    assert client.post(page, data=no_token, headers={"HX-Request": "true"}).status_code == 400
