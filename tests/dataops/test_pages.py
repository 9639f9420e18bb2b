"""Import and export pages: upload, mapping, the job with its progress panel, records, limits, roles."""

from __future__ import annotations

import io
import re

from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from morket.core.roles import VIEWER
from morket.dataops.models import DataRun
from morket.tables import service as tables
from tests.factories import MembershipFactory, csrf_token, login


def _upload(client, workspace, data: bytes, name: str = "leads.csv", **extra):
    token = csrf_token(client, f"/w/{workspace.slug}/imports")
    form = {"csrf_token": token, "file": FileStorage(io.BytesIO(data), name), **extra}
    # Encoded in memory: the test client would spool a large body to a temporary file it never closes.
    boundary, body = encode_multipart(form)
    return client.post(
        f"/w/{workspace.slug}/imports", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def test_empty_page_says_what_to_do(client, db, owner):
    workspace, user = owner
    login(client, user)
    page = client.get(f"/w/{workspace.slug}/imports").get_data(as_text=True)
    assert "Drop a CSV file here" in page
    assert "Nothing imported or exported yet" in page


def test_upload_map_run_and_see_the_rows(client, db, owner, run_jobs):
    workspace, user = owner
    login(client, user)
    resp = _upload(client, workspace, "Name;Email;Seats\nAcme;a@acme.com;5\nBeta;b@beta.io;7\n".encode("utf-16"))
    assert resp.status_code == 302
    run_url = resp.headers["Location"]
    page = client.get(run_url).get_data(as_text=True)
    assert "UTF-16" in page and "semicolon separated" in page
    assert "Number" in page and "Acme" in page

    token = csrf_token(client, run_url)
    form = {
        "csrf_token": token,
        "table_name": "Leads",
        "target_0": "new",
        "name_0": "Company",
        "type_0": "text",
        "target_1": "new",
        "name_1": "Email",
        "type_1": "email",
        "target_2": "skip",
        "type_2": "number",
        "dedupe": "1",
        "on_duplicate": "skip",
    }
    resp = client.post(run_url + "/start", data=form)
    assert resp.status_code == 302
    page = client.get(run_url).get_data(as_text=True)
    assert 'hx-trigger="every 1s"' in page and "Cancel import" in page

    assert run_jobs() == 1
    panel = client.get(run_url + "/progress")
    assert panel.status_code == 286
    assert "2 rows added" in panel.get_data(as_text=True)
    run = db.session.get(DataRun, int(run_url.rsplit("/", 1)[1]))
    table = tables.get_table_or_404(workspace, run.table_id)
    assert [(c.name, c.type) for c in table.live_columns] == [("Company", "text"), ("Email", "email")]
    rows = tables.read_window(workspace, user, table, None, 0, 10)
    assert [r.cells for r in rows] == [("Acme", "a@acme.com"), ("Beta", "b@beta.io")]
    records = client.get(f"/w/{workspace.slug}/imports").get_data(as_text=True)
    assert "leads.csv" in records and "done" in records and user.name in records


def test_bad_rows_offer_the_error_file_and_a_choice(client, db, owner, run_jobs):
    workspace, user = owner
    login(client, user)
    run_url = _upload(client, workspace, b"name,n\nA,1\nB,x\n").headers["Location"]
    form = {"csrf_token": csrf_token(client, run_url), "table_name": "T", "target_0": "new", "type_0": "text"}
    form.update({"target_1": "new", "type_1": "number", "name_0": "name", "name_1": "n"})
    client.post(run_url + "/start", data=form)
    run_jobs()
    panel = client.get(run_url + "/progress").get_data(as_text=True)
    assert "1 of 2 rows cannot be imported" in panel and "import the other 1 row or cancel" in panel
    assert "Import the other 1 row</button>" in panel and "1 rows" not in panel
    errors = client.get(run_url + "/errors.csv")
    assert errors.status_code == 200 and b"3,n: \xe2\x80\x9cx\xe2\x80\x9d is not a number." in errors.get_data()
    assert len(tables.list_tables(workspace)) == 0

    client.post(run_url + "/continue", data={"csrf_token": csrf_token(client, run_url)})
    run_jobs()
    done = client.get(run_url + "/progress").get_data(as_text=True)
    assert "1 row added, 1 row with errors left out." in done and "Download the 1 row left out" in done


def test_mapping_errors_come_back_on_the_form(client, db, owner):
    workspace, user = owner
    login(client, user)
    run_url = _upload(client, workspace, b"a,b\n1,2\n").headers["Location"]
    resp = client.post(
        run_url + "/start",
        data={"csrf_token": csrf_token(client, run_url), "target_0": "skip", "target_1": "skip"},
    )
    assert resp.status_code == 422
    assert "Map at least one CSV column" in resp.get_data(as_text=True)


def test_import_cap_is_separate_from_the_general_upload_limit(client, db, owner, app, monkeypatch):
    workspace, user = owner
    login(client, user)
    big = b"name,n\n" + b"".join(b"row %07d,%d\n" % (i, i) for i in range(800_000))
    assert len(big) > app.config["MAX_CONTENT_LENGTH"]
    assert _upload(client, workspace, big).status_code == 302
    monkeypatch.setitem(app.config["MORKET"], "IMPORT_MAX_BYTES", 1024)
    resp = _upload(client, workspace, big)
    assert resp.status_code == 413
    assert "larger than the import limit" in resp.get_data(as_text=True)


def test_empty_file_is_refused_clearly(client, db, owner):
    workspace, user = owner
    login(client, user)
    resp = _upload(client, workspace, b"")
    assert resp.status_code == 422
    assert "The file is empty" in resp.get_data(as_text=True)


def test_upload_needs_the_csrf_token(client, db, owner):
    workspace, user = owner
    login(client, user)
    resp = client.post(
        f"/w/{workspace.slug}/imports",
        data={"file": (io.BytesIO(b"a\n1\n"), "x.csv")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400


def test_viewers_cannot_import_and_strangers_get_404(client, new_client, db, owner, stranger):
    workspace, user = owner
    login(client, user)
    run_url = _upload(client, workspace, b"a\n1\n").headers["Location"]
    viewer = MembershipFactory(workspace=workspace, role=VIEWER).user
    other = new_client()
    login(other, viewer)
    assert other.get(f"/w/{workspace.slug}/imports").status_code == 200
    assert other.get(run_url).status_code == 200
    page = other.get(f"/w/{workspace.slug}/imports").get_data(as_text=True)
    header_token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    assert "Drop a CSV file here" not in page
    assert other.post(run_url + "/cancel", headers={"X-CSRFToken": header_token}).status_code == 403
    outsider = new_client()
    login(outsider, stranger[1])
    for url in (run_url, run_url + "/progress", run_url + "/errors.csv", f"/w/{workspace.slug}/imports"):
        assert outsider.get(url).status_code == 404
    assert outsider.get(f"/w/{stranger[0].slug}/imports/{run_url.rsplit('/', 1)[1]}").status_code == 404


def _start_form(client, run_url, types):
    form = {"csrf_token": csrf_token(client, run_url), "table_name": "T"}
    for i, kind in enumerate(types):
        form.update({f"target_{i}": "new", f"type_{i}": kind, f"name_{i}": f"c{i}"})
    return form


def test_ragged_lines_are_named_in_the_preview_and_the_review(client, db, owner, run_jobs):
    workspace, user = owner
    login(client, user)
    run_url = _upload(client, workspace, b"name,n\nA,1\nB,2,EXTRA\nC,3\nD\n").headers["Location"]

    page = client.get(run_url).get_data(as_text=True)

    assert "Lines 3 and 5 do not have 2 values like the header row." in page
    preview = page[page.index('id="import-preview"') : page.index("</table>", page.index('id="import-preview"'))]
    assert "EXTRA" not in preview  # no unlabeled column for the extra value
    assert len(re.findall(r"<th[ >]", preview)) == 3  # Line, name, n
    assert 'id="import-preview-line-3"' in preview and "3 values" in preview
    assert 'id="import-preview-line-5"' in preview and "1 value<" in preview

    client.post(run_url + "/start", data=_start_form(client, run_url, ["text", "number"]))
    run_jobs()
    panel = client.get(run_url + "/progress").get_data(as_text=True)

    assert "Lines 3 and 5 do not have 2 values like the header row." in panel
    assert "Expected 2 values, found 3." in panel and "Expected 2 values, found 1." in panel
    assert "Import the other 2 rows</button>" in panel


def test_the_encoding_can_be_chosen_over_the_detected_one(client, db, owner):
    workspace, user = owner
    login(client, user)
    data = "Firma,Miasto\nZakład Świątek,Łódź\n".encode("iso8859_2")
    run_url = _upload(client, workspace, data).headers["Location"]
    page = client.get(run_url).get_data(as_text=True)
    assert "ISO-8859-2" in page and "Zakład Świątek" in page

    resp = client.post(run_url + "/encoding", data={"csrf_token": csrf_token(client, run_url), "encoding": "cp1252"})
    assert resp.status_code == 302
    page = client.get(run_url).get_data(as_text=True)
    assert '<span id="import-encoding">Windows-1252' in page and "Zak³ad" in page
    assert db.session.get(DataRun, int(run_url.rsplit("/", 1)[1])).settings["encoding"] == "cp1252"

    resp = client.post(run_url + "/encoding", data={"csrf_token": csrf_token(client, run_url), "encoding": "utf-8"})
    assert resp.status_code == 422 and "not valid UTF-8" in resp.get_data(as_text=True)
    resp = client.post(run_url + "/encoding", data={"csrf_token": csrf_token(client, run_url), "encoding": "rot13"})
    assert resp.status_code == 422 and "Choose one of the listed encodings" in resp.get_data(as_text=True)
    assert db.session.get(DataRun, int(run_url.rsplit("/", 1)[1])).settings["encoding"] == "cp1252"


def test_a_file_with_no_good_row_offers_no_import_of_the_others(client, db, owner, run_jobs):
    workspace, user = owner
    login(client, user)
    run_url = _upload(client, workspace, b"name,n\nA,x\n").headers["Location"]
    client.post(run_url + "/start", data=_start_form(client, run_url, ["text", "number"]))
    run_jobs()
    panel = client.get(run_url + "/progress").get_data(as_text=True)
    assert "The file&#39;s only row cannot be imported." in panel
    assert "Import the other" not in panel
