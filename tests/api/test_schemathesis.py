"""Schemathesis over the whole /api/v1 document with every check, against a seeded workspace.

The run is what ``st run --checks all`` does (examples, coverage and fuzzing phases, positive and
negative data), in-process: the app is served on a loopback port by a single-threaded server
inside the test, on the test's rolled-back transaction. The seed is fixed so a finding stays
found. Path parameters point at real objects of the seeded workspace, so operations reach their
handlers instead of stopping at 404.

``positive_data_acceptance`` also accepts 422: data the document cannot describe (a column name
that is not in the table, a duplicate name, an unknown provider operation) fits the schema and is
refused with a 422 naming the field.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter

import pytest
import schemathesis
from hypothesis.errors import HypothesisWarning
from schemathesis.engine import events, from_schema
from werkzeug.serving import make_server

from morket.api.tokens import encode_access_token
from morket.extensions import limiter
from morket.tables import service
from tests.api.conftest import bearer
from tests.support.seeding import seed_rows

SEED = 20261207
MAX_EXAMPLES = 12


@pytest.fixture
def served(app, db):
    """The app on a free loopback port, one request at a time (they share the test's connection)."""
    server = make_server("127.0.0.1", 0, app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    limiter.enabled = False  # thousands of requests from one token are the point here
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        limiter.enabled = True
        server.shutdown()
        thread.join(timeout=10)


def _seed(team) -> dict[str, int]:
    workspace, owner = team.workspace, team.owner
    columns = [
        {"name": "Company", "type": "text"},
        {"name": "Employees", "type": "number"},
        {"name": "Tags", "type": "multi_select", "config": {"options": ["Lead", "Customer"]}},
    ]
    table = service.create_table(workspace, owner, "Accounts", columns=columns)
    seed_rows(workspace, owner, table, 20, seed=1)
    row = service.read_window(workspace, owner, table, None, 0, 1)[0]
    view = service.list_views(workspace, table)[0]
    return {
        "table_id": table.id,
        "column_id": table.live_columns[0].id,
        "row_id": row.id,
        "view_id": view.id,
        "member_id": team.member.id,
    }


def test_schemathesis_finds_no_server_error_undocumented_status_or_accepted_invalid_body(app, db, team, served):
    ids = _seed(team)
    db.session.flush()
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": served,
            "headers": bearer(encode_access_token(team.owner.id, team.workspace.id, "owner")),
            "parameters": ids,
            "checks": {
                "enabled": True,
                "positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422"]},
            },
            "generation": {"max-examples": MAX_EXAMPLES, "mode": "all", "database": "none"},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    schema = schemathesis.openapi.from_url(f"{served}/api/v1/openapi.json", config=config)
    failures: Counter[tuple[str, str, str]] = Counter()
    examples: dict[tuple[str, str, str], str] = {}
    errors: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", HypothesisWarning)
        for event in from_schema(schema).execute():
            if isinstance(event, events.NonFatalError):
                errors.append(f"{event.label}: {event.value}")
            if not isinstance(event, events.ScenarioFinished):
                continue
            recorder = event.recorder
            for case_id, nodes in recorder.checks.items():
                for node in nodes:
                    if node.failure_info is None:
                        continue
                    key = (recorder.label, node.name, node.failure_info.failure.title)
                    failures[key] += 1
                    examples.setdefault(key, recorder.cases[case_id].value.as_curl_command())
    assert not errors, errors
    assert not failures, "\n".join(f"{n} × {key}: {examples[key]}" for key, n in failures.items())
