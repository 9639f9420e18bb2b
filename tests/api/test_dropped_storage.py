"""A table whose storage was dropped under a request answers 404, not 500.

The API's router knows no domain's storage: the tables domain registers its ``ut`` schema with it
when the app is built (``api.routing.register_droppable_schema``).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from morket.api.tokens import encode_access_token
from morket.tables import service
from tests.api.conftest import bearer

pytestmark = pytest.mark.usefixtures("db")


def test_reading_rows_of_a_table_whose_storage_is_gone_answers_404(client, db, team):
    table = service.create_table(team.workspace, team.owner, "Leads", columns=[{"name": "Company"}])
    service.insert_rows(team.workspace, team.owner, table, [{"Company": "Acme"}])
    db.session.flush()
    headers = bearer(encode_access_token(team.member.id, team.workspace.id, "member"))
    assert client.get(f"/api/v1/tables/{table.id}/rows", headers=headers).status_code == 200

    # What a concurrent delete leaves for a request that already found the table: its catalogue
    # row, and no storage.
    db.session.execute(sa.text(f'DROP TABLE ut."{table.storage_name}"'))
    resp = client.get(f"/api/v1/tables/{table.id}/rows", headers=headers)

    assert resp.status_code == 404, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "not_found"
