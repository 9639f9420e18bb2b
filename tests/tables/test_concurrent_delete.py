"""Deleting a table while it is written to: every request answers 2xx, 404 or 409, never 500.

The data is committed for real and every request runs in its own thread with its own database
connection, as requests to separate web workers would; the waits only bound how long a broken
build can hang.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from morket.api.tokens import encode_access_token
from morket.extensions import db, limiter
from tests.api.conftest import bearer

ALLOWED = {200, 201, 404, 409}
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


def _fire(app, t: CommittedTable) -> list[tuple[str, int, str]]:
    calls = _requests(t)
    barrier = threading.Barrier(len(calls))
    results: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def one(kind: str, method: str, url: str, body: dict | None) -> None:
        client = app.test_client()
        barrier.wait(timeout=60)
        resp = client.open(url, method=method, json=body, headers=t.headers)
        with lock:
            results.append((kind, resp.status_code, resp.get_data(as_text=True)[:300]))

    threads = [threading.Thread(target=one, args=call, daemon=True) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


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
