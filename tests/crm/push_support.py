"""Shared setup of the push tests: a connected workspace and a table of people to send."""

from __future__ import annotations

from typing import Any

from morket.crm import mapping as mappings
from morket.crm import push, service
from morket.crm.push_executor import work
from morket.runs.models import Run
from morket.tables import rows as table_rows
from morket.tables import service as tables
from tests.crm.conftest import connect
from tests.factories import login, workspace_with_owner

COLUMNS = [
    {"name": "Email", "type": "email"},
    {"name": "First name", "type": "text"},
    {"name": "Last name", "type": "text"},
    {"name": "Company", "type": "text"},
    {"name": "Job title", "type": "text"},
    {"name": "Employees", "type": "number"},
]


def person(i: int) -> dict[str, Any]:
    return {
        "Email": f"person{i}@example{i % 7}.com",
        "First name": f"First{i}",
        "Last name": f"Last{i}",
        "Company": f"Company {i % 13}",
        "Job title": "VP Sales" if i % 2 else "CTO",
        "Employees": 10 + i,
    }


def setup(client, db, crm, provider: str, rows: int, name: str = "Acme Revenue"):
    """A workspace whose owner connected ``provider``, and a table of ``rows`` people."""
    workspace, owner = workspace_with_owner(name=name)
    db.session.flush()
    login(client, owner)
    resp, _ = connect(client, crm, workspace.slug, provider)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:300]
    table = tables.create_table(workspace, owner, "Leads", columns=COLUMNS)
    for start in range(0, rows, 1000):
        table_rows.insert_rows(workspace, owner, table, [person(i) for i in range(start, min(rows, start + 1000))])
    db.session.flush()
    return workspace, owner, table


def save(workspace, owner, table, provider: str, payload: dict[str, Any]):
    objects = service.describe_objects(workspace, provider)
    return mappings.save_mapping(workspace, owner, table, provider, objects, payload)


def column(table, name: str) -> int:
    return next(c.id for c in table.live_columns if c.name == name)


def run_push(db, workspace, owner, table, provider: str, **scope: Any) -> Run:
    """Start a push and work it to the end in this process, as a worker would."""
    run = push.start_push(workspace, owner, table, provider, scope=scope.pop("scope", "all"), **scope)
    db.session.commit()
    for _ in range(30):
        work(run.id, 0, budget=30)
        db.session.expire_all()
        run = db.session.get(Run, run.id)
        if run.finished:
            break
    return run


def cells(db, table, column_id: int) -> dict[int, Any]:
    from morket.tables import storage

    store = storage.storage_for(table)
    col = store.columns[column_id]
    return {r[0]: (r[1], r[2]) for r in db.session.execute(
        store.rows.select().with_only_columns(store.rows.c.id, col, store.rows.c.cell_state)
    )}  # fmt: skip
