"""Every file of the csv-spectrum corpus imports to exactly the rows of its expected JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from morket.tables import service as tables
from tests.conftest import SHARED, shared_corpus
from tests.dataops.conftest import export_rows, run_import

_CSVS = SHARED / "corpora" / "csv-spectrum" / "csvs"
NAMES = sorted(p.stem for p in _CSVS.glob("*.csv")) or ["csv-spectrum"]


@pytest.mark.parametrize("name", NAMES)
def test_spectrum_file_imports_to_its_json(db, owner, name):
    folder = shared_corpus("csv-spectrum")
    data = (folder / "csvs" / f"{name}.csv").read_bytes()
    expected = json.loads(Path(folder / "json" / f"{name}.json").read_text(encoding="utf-8"))
    workspace, user = owner

    run = run_import(db, workspace, user, data, name=f"{name}.csv")

    assert run.status == "done", run.message
    assert run.rows_out == len(expected) and run.error_count == 0
    table = tables.get_table_or_404(workspace, run.table_id)
    assert [c.name for c in table.live_columns] == list(expected[0])
    assert export_rows(workspace, user, table, raw=True) == expected
