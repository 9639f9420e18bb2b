"""Feedback for column changes: the toast after the reload, Undo on a deleted column, undo/redo answers,
and a number column's format surviving a change to another number type."""

from __future__ import annotations

import re

import pytest

from morket.tables import column_service, number_format, service
from tests.factories import csrf_token, login


@pytest.fixture
def deals(db, owner):
    workspace, user = owner
    table = service.create_table(
        workspace,
        user,
        "Deals",
        columns=[
            {"name": "Company", "type": "text"},
            {"name": "Amount", "type": "number"},
            {"name": "Region", "type": "text"},
        ],
    )
    service.insert_rows(workspace, user, table, [{"Company": "Acme", "Amount": "1234.5", "Region": "EU"}])
    return table


def _column(table, name):
    return next(c for c in table.live_columns if c.name == name)


def _columns_url(workspace, table, tail=""):
    return f"/w/{workspace.slug}/tables/{table.id}/columns{tail}"


def _post(client, workspace, table, tail, data):
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{table.id}")
    return client.post(
        _columns_url(workspace, table, tail), data={"csrf_token": token, **data}, headers={"HX-Request": "true"}
    )


def _toasts(client, workspace, table) -> list[str]:
    """The toasts the refreshed grid page shows (HX-Refresh reloads it; the flash is rendered once)."""
    page = client.get(f"/w/{workspace.slug}/tables/{table.id}").get_data(as_text=True)
    box = page[page.index('id="toasts"') : page.index('id="toast-template"')]
    return [re.sub(r"\s+", " ", t).strip() for t in re.findall(r'class="toast-text">([^<]*)<', box)]


def test_column_changes_show_a_toast_after_the_reload(db, client, owner, deals):
    workspace, user = owner
    login(client, user)
    company, amount, region = (_column(deals, n) for n in ("Company", "Amount", "Region"))
    cases = [
        (f"/{company.id}/rename", {"name": "Account"}, "Renamed “Company” to “Account”."),
        (f"/{region.id}/move", {"position": "1"}, "Moved “Region” to place 1."),
        (f"/{amount.id}/hide", {"hidden": "1"}, "Hid “Amount”."),
        (f"/{amount.id}/hide", {"hidden": "0"}, "Showing “Amount” again."),
        ("/freeze", {"count": "2"}, "Froze the first 2 columns."),
        ("/freeze", {"count": "0"}, "No columns are frozen now."),
        ("", {"name": "Owner", "type": "text", "position": "2"}, "Added “Owner”."),
    ]
    for tail, data, message in cases:
        resp = _post(client, workspace, deals, tail, data)
        assert resp.status_code == 204 and resp.headers["HX-Refresh"] == "true", tail
        assert _toasts(client, workspace, deals) == [message]
    # Shown once: the next page load has no toast left over.
    assert _toasts(client, workspace, deals) == []


def test_a_plain_form_post_carries_the_toast_across_the_redirect(db, client, owner, deals):
    workspace, user = owner
    login(client, user)
    company = _column(deals, "Company")
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{deals.id}")
    resp = client.post(
        _columns_url(workspace, deals, f"/{company.id}/rename"), data={"csrf_token": token, "name": "Firm"}
    )
    assert resp.status_code == 302
    assert _toasts(client, workspace, deals) == ["Renamed “Company” to “Firm”."]


def test_a_failed_change_shows_its_error_and_no_success_toast(db, client, owner, deals):
    workspace, user = owner
    login(client, user)
    company = _column(deals, "Company")
    resp = _post(client, workspace, deals, f"/{company.id}/rename", {"name": "Amount"})
    assert resp.status_code in (409, 422)
    assert _toasts(client, workspace, deals) == []


def test_deleting_a_column_offers_undo_and_undo_brings_it_back_with_a_reload(db, client, owner, deals):
    workspace, user = owner
    login(client, user)
    region = _column(deals, "Region")
    resp = _post(client, workspace, deals, f"/{region.id}/delete", {})
    assert resp.status_code == 204
    page = client.get(f"/w/{workspace.slug}/tables/{deals.id}").get_data(as_text=True)
    toast = page[page.index('id="toasts"') : page.index('id="toast-template"')]
    assert "Deleted “Region”." in toast and "data-toast-undo" in toast and ">Undo</button>" in toast

    token = csrf_token(client, f"/w/{workspace.slug}/tables/{deals.id}")
    resp = client.post(f"/w/{workspace.slug}/tables/{deals.id}/undo", data={"csrf_token": token})
    body = resp.get_json()
    assert resp.status_code == 200 and body["data"]["reload"] is True
    assert body["data"]["message"] == "Undid the column change."
    db.session.expire_all()
    assert "Region" in [c.name for c in service.get_table_or_404(workspace, deals.id).live_columns]
    # The grid reloads the page, which repeats the message as a toast.
    assert _toasts(client, workspace, deals) == ["Undid the column change."]


def test_undoing_a_format_change_answers_with_the_format_the_column_has_again(db, client, owner, deals):
    workspace, user = owner
    login(client, user)
    amount = _column(deals, "Amount")
    resp = _post(
        client,
        workspace,
        deals,
        f"/{amount.id}/format",
        {"decimals": "2", "thousands": "1", "style": "currency", "currency": "EUR"},
    )
    assert resp.status_code == 204
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{deals.id}")
    data = client.post(f"/w/{workspace.slug}/tables/{deals.id}/undo", data={"csrf_token": token}).get_json()["data"]
    assert data["message"] == "Undid the format change." and "reload" not in data
    assert data["column_format"] == {
        "column_id": amount.id,
        "format": {"decimals": None, "thousands": True, "suffix": ""},
    }
    data = client.post(f"/w/{workspace.slug}/tables/{deals.id}/redo", data={"csrf_token": token}).get_json()["data"]
    assert data["column_format"]["format"] == {"decimals": 2, "thousands": True, "suffix": " EUR"}
    assert _toasts(client, workspace, deals) == []


@pytest.mark.parametrize(
    ("config", "to_type", "kept"),
    [
        ({"decimals": 1, "thousands": False}, "percent", {"decimals": 1, "thousands": False}),
        ({"decimals": 3, "style": "currency", "currency": "EUR"}, "currency", {"decimals": 3, "currency": "EUR"}),
        ({"decimals": 0, "style": "percent"}, "currency", {"decimals": 0, "currency": "USD"}),
        ({"decimals": 2, "style": "percent"}, "text", {}),
    ],
)
def test_changing_a_number_column_to_another_number_type_keeps_its_format(
    db, owner, deals, run_jobs, config, to_type, kept
):
    workspace, user = owner
    amount = _column(deals, "Amount")
    column_service.set_column_format(workspace, user, deals, amount.id, config)
    column_service.start_retype(workspace, user, deals, amount.id, to_type)
    run_jobs()
    db.session.expire_all()
    amount = _column(service.get_table_or_404(workspace, deals.id), "Amount")
    assert amount.type == to_type
    assert amount.config == kept


def test_a_currency_column_changed_to_number_keeps_its_currency_as_the_style(db, owner, deals, run_jobs):
    workspace, user = owner
    table = service.create_table(workspace, user, "Prices", columns=[{"name": "Price", "type": "currency"}])
    price = table.live_columns[0]
    column_service.set_column_format(workspace, user, table, price.id, {"decimals": 1, "currency": "GBP"})
    column_service.start_retype(workspace, user, table, price.id, "number")
    run_jobs()
    db.session.expire_all()
    price = service.get_table_or_404(workspace, table.id).live_columns[0]
    assert price.type == "number"
    assert price.config == {"decimals": 1, "style": "currency", "currency": "GBP"}
    shown = number_format.format_json(number_format.format_of(price.type, price.config))
    assert shown == {"decimals": 1, "thousands": True, "suffix": " GBP"}


def test_a_view_whose_filters_match_nothing_offers_to_clear_them(db, client, owner, deals):
    from tests.factories import MembershipFactory

    workspace, user = owner
    company = _column(deals, "Company")
    filters = {"op": "and", "conditions": [{"column_id": company.id, "operator": "contains", "value": "zzz"}]}
    view = service.create_view(workspace, user, deals, "Nobody", filters=filters)
    page_url = f"/w/{workspace.slug}/tables/{deals.id}?view={view.id}"
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    login(client, viewer)
    page = client.get(page_url).get_data(as_text=True)
    assert "No rows match these filters." in page and "No rows yet" not in page
    assert "Clear filters" not in page and "Ask an editor" in page

    login(client, user)
    page = client.get(page_url).get_data(as_text=True)
    assert "No rows match these filters." in page and "Clear filters" in page
    token = csrf_token(client, page_url)
    resp = client.post(
        f"/w/{workspace.slug}/tables/{deals.id}/views/{view.id}/filters/clear", data={"csrf_token": token}
    )
    assert resp.status_code == 303
    db.session.expire_all()
    assert not service.get_view_or_404(workspace, deals, view.id).filters
    page = client.get(page_url).get_data(as_text=True)
    assert "No rows match these filters." not in page and "Cleared the filters of “Nobody”." in page
