"""The pull page: preview, start, progress with a final toast, pull again; viewers cannot start pulls."""

from __future__ import annotations

from morket.crm.pull_models import CrmPullSource
from tests.crm.conftest import connect
from tests.crm.test_pull import contacts, seed
from tests.factories import MembershipFactory, csrf_token, login, workspace_with_owner


def test_preview_start_progress_and_pull_again(client, new_client, crm, db, run_jobs):
    workspace, owner = workspace_with_owner(name="Pull Page Co")
    viewer = MembershipFactory(workspace=workspace, role="viewer").user
    db.session.flush()
    login(client, owner)
    page = client.get(f"/w/{workspace.slug}/crm/pull").get_data(as_text=True)
    assert "No CRM is connected" in page and "No pulls yet" in page
    connect(client, crm, workspace.slug, "hubspot")
    made = seed(crm, "hubspot", object="contacts", records=contacts(12), list="Event")
    token = csrf_token(client, f"/w/{workspace.slug}/crm/pull")
    form = {"csrf_token": token, "provider": "hubspot", "kind": "list", "list_id": made["list_id"],
            "fields": "email, firstname"}  # fmt: skip
    preview = client.post(f"/w/{workspace.slug}/crm/pull/preview", data=form).get_data(as_text=True)
    assert preview.count("<tr>") == 11 and "person0@example.com" in preview  # a header and the first 10
    bad = client.post(f"/w/{workspace.slug}/crm/pull/preview", data=form | {"fields": "emial"})
    assert bad.status_code == 200 and "no field “emial”" in bad.get_data(as_text=True)
    started = client.post(f"/w/{workspace.slug}/crm/pull/start", data=form | {"table_name": "Event leads"})
    assert started.status_code == 303
    source = db.session.query(CrmPullSource).filter_by(workspace_id=workspace.id).one()
    pull_id = int(started.headers["Location"].rsplit("pull=", 1)[1])
    run_jobs()
    progress = client.get(f"/w/{workspace.slug}/crm/pulls/{pull_id}?polling=1")
    assert 'data-pull-status="done"' in progress.get_data(as_text=True)
    assert "12 read" in progress.get_data(as_text=True) and "Pull finished" in progress.headers["HX-Trigger"]
    listed = client.get(f"/w/{workspace.slug}/crm/pull?table_id={source.table_id}").get_data(as_text=True)
    assert "Event leads" in listed and "Pull again" in listed and "12 read" in listed
    grid = client.get(f"/w/{workspace.slug}/tables/{source.table_id}").get_data(as_text=True)
    assert "Import from HubSpot/Salesforce" in grid
    assert "import from HubSpot or Salesforce" in client.get(f"/w/{workspace.slug}/imports").get_data(as_text=True)
    assert "Import from HubSpot into a table" in client.get(f"/w/{workspace.slug}/connections").get_data(as_text=True)

    other = new_client()
    login(other, viewer)
    seen = other.get(f"/w/{workspace.slug}/crm/pull").get_data(as_text=True)
    assert "Start pull" not in seen and "Pull again" not in seen and "HubSpot list" in seen
    vtoken = csrf_token(other, f"/w/{workspace.slug}/crm/pull")
    assert other.post(f"/w/{workspace.slug}/crm/pull/start", data=form | {"csrf_token": vtoken}).status_code == 403
    assert (
        other.post(f"/w/{workspace.slug}/crm/pull-sources/{source.id}/again", data={"csrf_token": vtoken}).status_code
        == 403
    )
    again = client.post(f"/w/{workspace.slug}/crm/pull-sources/{source.id}/again", data={"csrf_token": token})
    assert again.status_code == 303
    run_jobs()
    again_id = int(again.headers["Location"].rsplit("pull=", 1)[1])
    done = client.get(f"/w/{workspace.slug}/crm/pulls/{again_id}").get_data(as_text=True)
    assert "0 read" in done and "changed since the last pull" in done
