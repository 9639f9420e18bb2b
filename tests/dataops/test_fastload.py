"""CSV import fast path: plain and irregular cells in the same batch load exactly as the per-cell parser says."""

from __future__ import annotations

import csv
import io

from morket.dataops import fastload, service, tasks
from morket.tables import service as tables
from tests.dataops.conftest import export_rows, run_import

MAPPING = [
    {"source": 0, "target": "new", "name": "name", "type": "text"},
    {"source": 1, "target": "new", "name": "amount", "type": "number"},
    {"source": 2, "target": "new", "name": "day", "type": "date"},
]
# (line in the file, raw name, amount, day) -> what the export gives back; None marks a refused row.
IRREGULAR = {
    "   ": ("", "", ""),
    " Berlin ": (" Berlin ", "", ""),
    "tab\there": ("tab\there", "", ""),
    "back\\slash": ("back\\slash", "", ""),
    "two\nlines": ("two\nlines", "", ""),
    "\u2028": ("", "", ""),
    "thousands": ("thousands", "1000", ""),
    "plus": ("plus", "5", ""),
    "padded": ("padded", "12", "2024-02-29"),
    "leap 2000": ("leap 2000", "", "2000-02-29"),
}
CELLS = {
    "thousands": ("1,000", ""),
    "plus": ("+5", ""),
    "padded": (" 12 ", " 2024-02-29 "),
    "leap 2000": ("", "2000-02-29"),
}


def _file(rows: int, irregular_every: int, bad: dict[int, tuple[str, str, str]] | None = None) -> tuple[bytes, list]:
    """Return a CSV of ``rows`` plain rows with the irregular cells spread through it, and the expected export."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["name", "amount", "day"])
    expected = []
    irregular = list(IRREGULAR)
    for i in range(rows):
        if bad and i in bad:
            writer.writerow(bad[i])
            continue
        if i % irregular_every == 0:
            name = irregular[(i // irregular_every) % len(irregular)]
            amount, day = CELLS.get(name, ("", ""))
            writer.writerow([name, amount, day])
            got_name, got_amount, got_day = IRREGULAR[name]
            expected.append({"name": got_name, "amount": got_amount, "day": got_day})
        else:
            day = f"20{i % 30:02d}-{i % 12 + 1:02d}-{i % 28 + 1:02d}"
            writer.writerow([f"Company {i}", f"{i}.{i % 100:02d}", day])
            expected.append({"name": f"Company {i}", "amount": f"{i}.{i % 100:02d}", "day": day})
    return out.getvalue().encode(), expected


def test_plain_and_irregular_cells_across_batches_load_as_the_parser_says(db, owner):
    workspace, user = owner
    data, expected = _file(fastload.BATCH_ROWS * 2 + 500, irregular_every=97)

    run = run_import(db, workspace, user, data, mapping=MAPPING)

    assert run.status == "done", run.message
    assert run.rows_out == len(expected)
    table = tables.get_table_or_404(workspace, run.table_id)
    assert export_rows(workspace, user, table, raw=True) == expected


def test_bad_cells_deep_in_a_batch_are_reported_with_their_lines(db, owner):
    workspace, user = owner
    bad = {
        10: ("a", "12abc", "2020-01-01"),
        1500: ("b", "1", "2023-02-29"),  # not a leap year
        1501: ("c", "1" * 19, "1900-02-29"),  # both cells are bad: the first mapped column is named
        2200: ("d", "1", "0000-01-01"),
    }
    data, expected = _file(fastload.BATCH_ROWS * 3, irregular_every=50, bad=bad)

    run = run_import(db, workspace, user, data, mapping=MAPPING)

    assert run.status == "needs_review"
    assert run.error_count == 4 and run.rows_in == fastload.BATCH_ROWS * 3
    errors = list(csv.reader(io.StringIO(b"".join(service.read_errors(run)).decode())))
    # Line 1 is the header and the irregular name "two\nlines" spans two lines before each bad row.
    spans = {
        i: sum(1 for j in range(0, i, 50) if list(IRREGULAR)[(j // 50) % len(IRREGULAR)] == "two\nlines") for i in bad
    }
    assert [(int(e[0]), e[1].split(":")[0]) for e in errors[1:]] == [
        (i + 2 + spans[i], column) for i, column in zip(bad, ["amount", "day", "amount", "day"], strict=True)
    ]
    assert errors[3][1] == "amount: Number is too large (limit: 10^18)."

    service.import_rest(workspace, user, run)
    db.session.commit()
    run = tasks.run_import(run.id)

    assert run.status == "done" and run.rows_out == len(expected)
    table = tables.get_table_or_404(workspace, run.table_id)
    assert export_rows(workspace, user, table, raw=True) == expected


def test_one_reordered_column_into_an_existing_table(db, owner):
    workspace, user = owner
    table = tables.create_table(workspace, user, "Leads", columns=[{"name": "Score", "type": "number"}])
    score = table.live_columns[0].id
    rows = "".join(f"x{i},{i}\n" for i in range(fastload.BATCH_ROWS + 10))
    data = ("name,score\n" + rows + "y, 7 \n").encode()

    run = service.upload_import(workspace, user, io.BytesIO(data), "scores.csv")
    service.start_import(workspace, user, run, table=table, mapping=[{"source": 1, "target": str(score)}])
    db.session.commit()
    run = tasks.run_import(run.id)

    assert run.status == "done", run.message
    values = [r["Score"] for r in export_rows(workspace, user, tables.get_table_or_404(workspace, table.id))]
    assert values == [str(i) for i in range(fastload.BATCH_ROWS + 10)] + ["7"]


def test_a_tab_inside_a_number_or_date_cell_is_an_error_row_not_a_broken_load(db, owner):
    workspace, user = owner
    data = b'name,amount,day\nok,1,2024-01-02\ntabbed,"1\t2",2024-01-03\nday,3,"2024-01-04\t2024-01-05"\n'

    run = run_import(db, workspace, user, data, mapping=MAPPING)

    # Each tab would have been a column separator of COPY's text format: the per-cell parser explains them.
    assert run.status == "needs_review", run.message
    assert (run.rows_in, run.error_count) == (3, 2)
    errors = list(csv.reader(io.StringIO(b"".join(service.read_errors(run)).decode())))
    assert [(e[0], e[1].split(":")[0]) for e in errors[1:]] == [("3", "amount"), ("4", "day")]
    assert len(tables.list_tables(workspace)) == 0

    service.import_rest(workspace, user, run)
    db.session.commit()
    run = tasks.run_import(run.id)
    assert run.status == "done" and run.rows_out == 1
    table = tables.get_table_or_404(workspace, run.table_id)
    assert export_rows(workspace, user, table, raw=True) == [{"name": "ok", "amount": "1", "day": "2024-01-02"}]
