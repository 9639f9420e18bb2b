"""The shared view plumbing: page or fragment, errors on form fields, and what a workspace is."""

from __future__ import annotations

from wtforms import Form, HiddenField, StringField

from morket.core.errors import ValidationFailed
from morket.core.forms import show_error_on_form
from tests.factories import login, workspace_with_owner

HISTORY = {"HX-Request": "true", "HX-Target": "credit-history"}


def _vary(resp) -> set[str]:
    return {part.strip() for part in resp.headers.get("Vary", "").split(",")}


def test_a_swap_of_one_part_gets_that_part_and_says_which_headers_chose_it(client, db):
    workspace, owner = workspace_with_owner()
    login(client, owner)
    swap = client.get(f"/w/{workspace.slug}/credits", headers=HISTORY)
    page = client.get(f"/w/{workspace.slug}/credits")
    assert swap.status_code == page.status_code == 200
    assert swap.get_data(as_text=True).lstrip().startswith('<div id="credit-history">')
    assert "<html" in page.get_data(as_text=True)
    # A cache keyed on HX-Request alone would hand the history fragment to a boosted link.
    for resp in (swap, page):
        assert {"HX-Request", "HX-Boosted", "HX-Target"} <= _vary(resp)


def test_a_boosted_link_or_another_target_gets_the_whole_page(client, db):
    workspace, owner = workspace_with_owner()
    login(client, owner)
    for headers in ({**HISTORY, "HX-Boosted": "true"}, {"HX-Request": "true", "HX-Target": "main"}):
        html = client.get(f"/w/{workspace.slug}/credits", headers=headers).get_data(as_text=True)
        assert "<html" in html and "credits-balance-value" in html


def test_template_variables_named_like_the_helper_options_reach_the_template(client, db):
    # The scrape page fills its URL box from ``target`` and the imports page preselects a table
    # from it: the helper must not take those names for itself.
    workspace, owner = workspace_with_owner()
    login(client, owner)
    html = client.get(f"/w/{workspace.slug}/scrape").get_data(as_text=True)
    assert 'name="url"' in html
    resp = client.post(
        f"/w/{workspace.slug}/scrape",
        data={"url": "not a url at all", "extractor": "company"},
        headers={"X-CSRFToken": _csrf(client, f"/w/{workspace.slug}/scrape")},
    )
    assert resp.status_code == 422
    assert 'value="not a url at all"' in resp.get_data(as_text=True)


def _csrf(client, path: str) -> str:
    from tests.factories import csrf_token

    return csrf_token(client, path)


class _Signup(Form):
    email = StringField()
    name = StringField()
    request_id = HiddenField()


def test_a_service_error_lands_on_the_fields_it_names():
    form = _Signup()
    show_error_on_form(form, ValidationFailed("Fix these.", fields={"email": ["Taken."], "name": ["Too long."]}))
    assert form.email.errors == ["Taken."] and form.name.errors == ["Too long."]
    assert form.form_errors == []


def test_an_error_no_visible_field_can_show_goes_on_the_form():
    # A hidden field shows no error, and a name that is no field (or is a form attribute such as
    # ``data``) must not be set on the form: the message would be lost or the page would crash.
    for fields in ({"request_id": ["invalid"]}, {"data": ["x"]}, {"idempotency_key": ["invalid"]}, {}):
        form = _Signup()
        show_error_on_form(form, ValidationFailed("Reload the page and try again.", fields=fields))
        assert form.form_errors == ["Reload the page and try again."]
        assert form.request_id.errors == () or form.request_id.errors == []


def test_field_codes_for_the_api_show_the_message_instead():
    form = _Signup()
    show_error_on_form(
        form, ValidationFailed("Use at most 100 characters.", fields={"name": ["too long"]}), codes_in_fields=True
    )
    assert form.name.errors == ["Use at most 100 characters."] and form.form_errors == []


def test_the_lazy_records_answer_what_a_workspace_and_a_member_are(db):
    from morket.core import types
    from morket.core.tenancy import member_records
    from morket.workspaces.models import Membership

    workspace, owner = workspace_with_owner(name="Acme Research")
    membership = db.session.query(Membership).filter_by(workspace_id=workspace.id, user_id=owner.id).one()
    row = (owner.id, True, True, workspace.id, workspace.slug, membership.id, membership.role)
    user, workspace_record, membership_record = member_records(row, f"{owner.id}:key")
    for protocol, record, orm in (
        (types.Workspace, workspace_record, workspace),
        (types.Member, membership_record, membership),
        (types.Actor, user, owner),
    ):
        names = [name for name, value in vars(protocol).items() if isinstance(value, property)]
        assert names, protocol
        assert {name: getattr(record, name) for name in names} == {name: getattr(orm, name) for name in names}
