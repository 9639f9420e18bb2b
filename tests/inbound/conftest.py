"""Fixtures for inbound sources: a workspace with a contacts table and a mapped source, and a poster."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook

from morket.inbound import service
from morket.tables import service as tables
from tests.factories import workspace_with_owner

CONTACT_COLUMNS = (
    {"name": "Email", "type": "email"},
    {"name": "Name", "type": "text"},
    {"name": "Employees", "type": "number"},
)


@pytest.fixture
def team(db):
    """A workspace, its owner and a contacts table."""
    workspace, owner = workspace_with_owner(name="Inbound Co")
    table = tables.create_table(workspace, owner, "Contacts", columns=CONTACT_COLUMNS)
    db.session.flush()
    return workspace, owner, table


@pytest.fixture
def source(db, team):
    """A source of the contacts table mapping email, name and employees; (source, secret)."""
    workspace, owner, table = team
    made, secret = service.create_source(workspace, owner, table, "Signup form")
    service.update_source(
        workspace,
        owner,
        made,
        columns={"Email": "$.email", "Name": "person.name", "Employees": "$.company.size"},
    )
    db.session.flush()
    return made, secret


def hook_path(source) -> str:
    return f"/api/v1/hooks/in/{source.token}"


def post(client, source, body, *, secret: str | None = None, headers=None, raw: bytes | None = None):
    """POST ``body`` (JSON-encoded) or ``raw`` bytes to the source with its secret in X-Morket-Secret."""
    sent = dict(headers or {})
    if secret is not None:
        sent["X-Morket-Secret"] = secret
    sent.setdefault("Content-Type", "application/json")
    data = raw if raw is not None else json.dumps(body).encode()
    return client.post(hook_path(source), data=data, headers=sent)


def signed_headers(secret: str, data: bytes, *, msg_id: str = "msg_1", at: datetime | None = None) -> dict[str, str]:
    """Standard Webhooks headers for ``data``, signed with the library the senders use."""
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, at, data)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())), "webhook-signature": signature}


def table_rows(workspace, owner, table) -> list[dict]:
    """Every row of the table as {column name: stored value}, in position order."""
    table = tables.get_table_or_404(workspace, table.id)
    names = {c.id: c.name for c in table.live_columns}
    rows = tables.read_window(workspace, owner, table, None, 0, 500)
    return [{names[cid]: value for cid, value in row.values(table).items()} for row in rows]
