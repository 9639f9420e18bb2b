"""Deleting a table while it is written to: every request answers 2xx, 404 or 409, never 500.

The data is committed for real and every request runs in its own thread with its own database
connection, as requests to separate web workers would; the waits only bound how long a broken
build can hang. The JSON API and the pages (the grid's edit, column and view endpoints, with a
browser session and its CSRF token) are both fired at.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from morket.api.tokens import encode_access_token
from morket.extensions import db, limiter
from tests.api.conftest import bearer
from tests.factories import csrf_token, login

ALLOWED = {200, 201, 404, 409}
PAGE_ALLOWED = {200, 204, 404, 409}
WRITERS_PER_KIND = 4
DELETERS = 4
ROUNDS = 3


class CommittedTable:
    """A workspace, its owner and a 40-row table with a view, committed for other connections to see."""

    def __init__(self) -> None:
        from morket.accounts.models import User
        from morket.tables import service
        from morket.workspaces.models import Membership, Workspace

        tag = uuid.uuid4().hex[:10]
        self.user = User(email=f"del-{tag}@example.com", name="Deleter", password_hash="not-a-hash")
        self.workspace = Workspace(slug=f"del-{tag}", name=f"Delete race {tag}")
        db.session.add_all([self.user, self.workspace])
        db.session.flush()
        db.session.add(Membership(workspace_id=self.workspace.id, user_id=self.user.id, role="owner"))
        columns = [{"name": "Company", "type": "text"}, {"name": "Employees", "type": "number"}]
        self.table = service.create_table(self.workspace, self.user, "Race", columns=columns)
        self.row_ids = service.insert_rows(
            self.workspace, self.user, self.table, [{"Company": f"c{i}", "Employees": i} for i in range(40)]
        )
        self.view_id = service.list_views(self.workspace, self.table)[0].id
        self.table_id = self.table.id
        db.session.commit()
        self.headers = bearer(encode_access_token(self.user.id, self.workspace.id, "owner"))

    def page_session(self, app) -> tuple[str, str]:
        """Log the owner in as a browser would; return its session cookie and the grid page's CSRF token."""
        client = app.test_client()
        login(client, self.user)
        db.session.commit()
        token = csrf_token(client, f"/w/{self.workspace.slug}/tables/{self.table_id}")
        return client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value, token

    def remove(self) -> None:
        from morket.accounts.models import User
        from morket.tables import service
        from morket.tables.models import Table
        from morket.workspaces.models import Workspace

        db.session.rollback()
        workspace = db.session.get(Workspace, self.workspace.id)
        table = db.session.get(Table, self.table_id)
        if table is not None:
            service.delete_table(workspace, None, table)
        db.session.execute(sa.delete(Workspace).where(Workspace.id == self.workspace.id))
        db.session.execute(sa.delete(User).where(User.id == self.user.id))
        db.session.commit()


@pytest.fixture
def committed(app) -> Iterator[list[CommittedTable]]:
    """Tables committed for real, removed (with their workspaces and owners) afterwards."""
    made: list[CommittedTable] = []
    with app.app_context():
        limiter.enabled = False  # hundreds of requests a second from one user are the point here
        try:
            yield made
        finally:
            limiter.enabled = True
            for item in made:
                item.remove()


def _requests(t: CommittedTable) -> list[tuple[str, str, str, dict | None]]:
    base = f"/api/v1/tables/{t.table_id}"
    calls: list[tuple[str, str, str, dict | None]] = []
    for i in range(WRITERS_PER_KIND):
        row = t.row_ids[i]
        calls += [
            ("patch_row", "PATCH", f"{base}/rows/{row}", {"Company": f"edited {i}", "Employees": i}),
            ("add_row", "POST", f"{base}/rows", {"Company": f"new {i}"}),
            ("bulk_rows", "POST", f"{base}/rows/bulk", {"rows": [{"Company": "b"}, {"Employees": 2}]}),
            ("delete_row", "DELETE", f"{base}/rows/{t.row_ids[-1 - i]}", None),
            ("add_column", "POST", f"{base}/columns", {"name": f"Col {i}", "type": "text"}),
            ("patch_view", "PATCH", f"{base}/views/{t.view_id}", {"sort": [{"column_id": t.table.columns[0].id}]}),
            ("read_rows", "GET", f"{base}/rows?limit=50", None),
        ]
    calls += [("delete_table", "DELETE", base, None)] * DELETERS
    return calls


def _all_at_once(calls: list[tuple], send) -> list[tuple[str, int, str]]:
    """Send every call from its own thread and client, all released together; (kind, status, body) each."""
    barrier = threading.Barrier(len(calls))
    results: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def one(kind: str, method: str, url: str, body: dict | None) -> None:
        barrier.wait(timeout=60)
        resp = send(method, url, body)
        with lock:
            results.append((kind, resp.status_code, resp.get_data(as_text=True)[:300]))

    threads = [threading.Thread(target=one, args=call, daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


def _fire(app, t: CommittedTable) -> list[tuple[str, int, str]]:
    def send(method: str, url: str, body: dict | None):
        return app.test_client().open(url, method=method, json=body, headers=t.headers)

    return _all_at_once(_requests(t), send)


def test_deleting_a_table_under_concurrent_writes_answers_only_2xx_404_409(app, committed):
    from morket.tables.models import Table

    for _ in range(ROUNDS):
        t = CommittedTable()
        committed.append(t)
        results = _fire(app, t)
        unexpected = [r for r in results if r[1] not in ALLOWED]
        assert not unexpected, unexpected
        deletes = Counter(status for kind, status, _ in results if kind == "delete_table")
        db.session.rollback()
        gone = db.session.get(Table, t.table_id) is None
        # One delete did it and the others found nothing, or every delete met busy writers and left it whole.
        assert deletes[200] == (1 if gone else 0), deletes
        if gone:
            exists = db.session.scalar(sa.text("SELECT to_regclass(:n)"), {"n": f"ut.t_{t.table_id}"})
            assert exists is None


def _page_requests(t: CommittedTable) -> list[tuple[str, str, str, dict | None]]:
    base = f"/w/{t.workspace.slug}/tables/{t.table_id}"
    company = t.table.columns[0].id
    view_form = {"name": "Grid view", "s_col": str(company), "s_dir": "asc", "shown": [str(company)]}
    calls: list[tuple[str, str, str, dict | None]] = []
    for i in range(WRITERS_PER_KIND):
        row = t.row_ids[i]
        calls += [
            ("save_cell", "POST", f"{base}/cells", {"row_id": row, "column_id": company, "value": f"edited {i}"}),
            ("add_rows", "POST", f"{base}/rows/add", {"count": 2}),
            ("delete_rows", "POST", f"{base}/rows/delete", {"row_ids": str(t.row_ids[-1 - i])}),
            ("paste", "POST", f"{base}/paste", {"row_ids": str(row), "column_id": company, "text": "a\nb"}),
            ("clear", "POST", f"{base}/clear", {"row_ids": str(row), "column_ids": str(company)}),
            ("undo", "POST", f"{base}/undo", {}),
            ("add_column", "POST", f"{base}/columns", {"name": f"Col {i}", "type": "text"}),
            ("width", "POST", f"{base}/columns/{company}/width", {"width": 200 + i, "view_id": t.view_id}),
            ("save_view", "POST", f"{base}/views/{t.view_id}", view_form),
            ("rename_table", "POST", f"{base}/rename", {"name": f"Race {i}"}),
            ("read_rows", "GET", f"{base}/rows?start=0&limit=50", None),
        ]
    calls += [("delete_table", "POST", f"{base}/delete", {})] * DELETERS
    return calls


def _fire_pages(app, t: CommittedTable) -> list[tuple[str, int, str]]:
    cookie, token = t.page_session(app)
    headers = {"X-CSRFToken": token, "HX-Request": "true"}

    def send(method: str, url: str, form: dict | None):
        client = app.test_client()
        client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
        return client.open(url, method=method, data=form, headers=headers)

    return _all_at_once(_page_requests(t), send)


def test_deleting_a_table_under_concurrent_page_writes_answers_only_2xx_404_409(app, committed):
    from morket.tables.models import Table

    written = 0
    for _ in range(ROUNDS):
        t = CommittedTable()
        committed.append(t)
        results = _fire_pages(app, t)
        unexpected = [r for r in results if r[1] not in PAGE_ALLOWED]
        assert not unexpected, unexpected
        written += sum(1 for kind, status, _ in results if kind != "delete_table" and status in (200, 204))
        deletes = Counter(status for kind, status, _ in results if kind == "delete_table")
        db.session.rollback()
        gone = db.session.get(Table, t.table_id) is None
        assert deletes[204] == (1 if gone else 0), deletes
        if gone:
            exists = db.session.scalar(sa.text("SELECT to_regclass(:n)"), {"n": f"ut.t_{t.table_id}"})
            assert exists is None
        else:
            # A writer finds no table only once a delete has removed it.
            assert not [r for r in results if r[0] != "delete_table" and r[1] == 404], results
    # The writers ran: some saw the table (2xx) before a delete removed it. In one round a delete may
    # take the table's lock before every writer, and then each of them rightly answers 404.
    assert written, "no page writer saw the table in any round"


def _wait_for_waiters(count: int) -> None:
    """Return once ``count`` sessions of this database wait for a lock (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with db.engine.connect() as conn:
            waiting = conn.scalar(
                sa.text(
                    "SELECT count(DISTINCT l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE NOT l.granted AND a.datname = current_database()"
                )
            )
        if waiting >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} sessions waited for a lock")


def test_a_sorted_view_read_while_a_delete_waits_answers_404_and_the_delete_204(app, committed):
    """A window read that builds a stale order waits for a delete's table lock before it locks the view.

    The steps are forced: a reader of the rows table holds the delete back while it holds the
    table's row, then the window read of a freshly sorted view arrives. Were the read to lock the
    view's row first and then wait for the rows table, the delete (dropping the rows table, then
    deleting the view's row) and the read would wait for each other: a deadlock and a 500.
    """
    from morket.tables import service, storage

    t = CommittedTable()
    committed.append(t)
    view = service.get_view_or_404(t.workspace, t.table, t.view_id)
    service.update_view(t.workspace, t.user, t.table, view, sort=[{"column_id": t.table.columns[1].id, "dir": "desc"}])
    db.session.commit()
    cookie, token = t.page_session(app)
    base = f"/w/{t.workspace.slug}/tables/{t.table_id}"
    headers = {"X-CSRFToken": token, "HX-Request": "true"}
    results: dict[str, int] = {}

    def one(kind: str, method: str, url: str) -> None:
        client = app.test_client()
        client.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)
        results[kind] = client.open(
            url, method=method, data={} if method == "POST" else None, headers=headers
        ).status_code

    with db.engine.connect() as holder:
        rows_table = sa.table(storage.rows_name(t.table_id), schema=storage.USER_SCHEMA)
        holder.execute(sa.select(sa.literal(1)).select_from(rows_table).limit(1))
        delete = threading.Thread(target=one, args=("delete", "POST", f"{base}/delete"), daemon=True)
        delete.start()
        _wait_for_waiters(1)
        read = threading.Thread(target=one, args=("read", "GET", f"{base}/rows?view={t.view_id}&start=0"), daemon=True)
        read.start()
        _wait_for_waiters(2)
        holder.rollback()
    delete.join(timeout=30)
    read.join(timeout=30)
    assert results == {"delete": 204, "read": 404}
