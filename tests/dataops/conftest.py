"""Fixtures for the CSV tests: two workspaces, a private data folder, and an import helper."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from morket.dataops import service, tasks
from tests.factories import workspace_with_owner


@pytest.fixture
def data_dir(app, tmp_path, monkeypatch):
    """Keep uploads and error files of this test in its own folder."""
    monkeypatch.setitem(app.config["MORKET"], "DATAOPS_DIR", str(tmp_path / "dataops"))
    return tmp_path / "dataops"


@pytest.fixture
def owner(db, data_dir):
    """Workspace A and its owner."""
    return workspace_with_owner()


@pytest.fixture
def stranger(db):
    """Workspace B and its owner, who must never reach workspace A's imports."""
    return workspace_with_owner()


def default_mapping(run) -> list[dict[str, Any]]:
    """Map every CSV column to a new column of its guessed type."""
    return [
        {"source": i, "target": "new", "name": name, "type": kind}
        for i, (name, kind) in enumerate(zip(run.settings["header"], run.settings["types"], strict=True))
    ]


def run_import(db, workspace, user, data: bytes, *, name: str = "file.csv", **start: Any):
    """Upload ``data``, start the import (new table, guessed types unless given) and run its job here."""
    run = service.upload_import(workspace, user, io.BytesIO(data), name)
    start.setdefault("mapping", default_mapping(run))
    service.start_import(workspace, user, run, **start)
    db.session.commit()  # the view commits before the worker picks the job up
    return tasks.run_import(run.id)


def export_rows(workspace, user, table, view=None, **options: Any) -> list[dict[str, str]]:
    """Export ``table`` (or a view of it) and parse the CSV back into dicts."""
    plan = service.plan_export(workspace, user, table, view, **options)
    body = b"".join(service.stream_export(plan)).decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(body, newline="")))
