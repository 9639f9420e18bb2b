"""Grid edit endpoints: typed cell saves, TSV paste, fill, clear, rows, undo and redo, by role.

Hypothesis drives the cell and paste endpoints with values for every column type and with junk:
the only acceptable outcomes are the stored value the parser promised, or a clear refusal (a 422,
or a per-cell problem of a paste) with the stored value unchanged. Never a 500, never a silent loss.
"""

from __future__ import annotations

import string
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morket.tables import editing, service
from morket.tables.cells import CellError, parse_cell
from morket.workspaces.models import Membership
from tests.factories import csrf_token, login
from tests.tables.conftest import _workspace_and_user

OPTIONS = ["Lead", "Customer", "Churned"]
TYPED = {
    "text": {},
    "long_text": {},
    "number": {},
    "currency": {"currency": "EUR"},
    "percent": {},
    "date": {},
    "datetime": {},
    "checkbox": {},
    "single_select": {"options": OPTIONS},
    "multi_select": {"options": OPTIONS},
    "email": {},
    "url": {},
    "phone": {},
    "domain": {},
    "json": {},
    "formula": {"expression": "1"},
}
HYPOTHESIS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
# Text a browser can send in a form: any character but lone surrogates (NUL included, it must be refused).
FORM_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
MEANT = st.one_of(
    st.sampled_from(
        ["", " ", "42", "-3.5", "1,234.50", "€ 12", "12%", "2024-02-29", "2023-02-29", "2024-05-01T10:30:00+02:00"]
        + ["true", "no", "x", "Lead", "lead, churned", "Nope", "a@b.co", "not an email", "https://acme.com/x"]
        + ["acme.io", "+1 (555) 010-2000", '{"a": [1, 2]}', "[1", "null", "1e400", "\x00"]
    ),
    FORM_TEXT,
    st.integers(-(10**20), 10**20).map(str),
    st.dates().map(date.isoformat),
)


@pytest.fixture
def typed(db, owner):
    """A table with a column of every type and three empty rows."""
    workspace, user = owner
    columns = [{"name": kind, "type": kind, "config": config} for kind, config in TYPED.items()]
    table = service.create_table(workspace, user, "Every type", columns=columns)
    service.insert_rows(workspace, user, table, [{}, {}, {}])
    return table


@pytest.fixture
def editor(client, owner, typed):
    """The owner logged in, with the grid page's CSRF token."""
    workspace, user = owner
    login(client, user)
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{typed.id}")
    return lambda path, **data: client.post(
        f"/w/{workspace.slug}/tables/{typed.id}/{path}", data=data, headers={"X-CSRFToken": token}
    )


def _column(table, kind: str):
    return next(c for c in table.live_columns if c.type == kind)


def _cell(workspace, user, table, row_id: int, column_id: int):
    return service.get_row(workspace, user, table, row_id).values(table)[column_id]


def _row_ids(workspace, user, table) -> list[int]:
    return [r.id for r in service.read_window(workspace, user, table, None, 0, 500)]


@HYPOTHESIS
@given(kind=st.sampled_from(sorted(TYPED)), raw=MEANT)
def test_a_cell_saves_what_the_parser_promises_or_says_why_and_keeps_the_value(owner, typed, editor, kind, raw):
    workspace, user = owner
    column = _column(typed, kind)
    row = _row_ids(workspace, user, typed)[0]
    before = _cell(workspace, user, typed, row, column.id)
    resp = editor("cells", row_id=str(row), column_id=str(column.id), value=raw)
    assert resp.status_code in (200, 422), resp.get_data(as_text=True)[:300]
    try:
        expected = parse_cell(column.type, column.config, raw)
    except CellError:
        assert resp.status_code == 422
        assert resp.get_json()["error"]["message"].startswith(f"{column.name}: ")
        assert _cell(workspace, user, typed, row, column.id) == before
        return
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert f'data-col-id="{column.id}"' in html and "is-saved" in html
    assert _cell(workspace, user, typed, row, column.id) == expected


def _tsv(block: list[list[str]]) -> str:
    """Encode cells as Excel and Google Sheets copy them."""

    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if any(ch in cell for ch in '\t\n\r"') else cell

    return "".join("\t".join(quote(c) for c in row) + "\r\n" for row in block)


TSV_CELL = st.one_of(
    st.sampled_from(["", "42", "1,5", "2024-01-31", "31/01/2024", "Lead", "x", 'say "hi"', "a\tb", "two\nlines"]),
    st.text(string.printable, max_size=12),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(TSV_CELL, min_size=3, max_size=3), min_size=1, max_size=5))
def test_tsv_parses_back_what_a_spreadsheet_copied(block):
    assert editing.parse_tsv(_tsv(block)) == block


def test_tsv_of_excel_and_sheets_examples():
    assert editing.parse_tsv('a\t"b\tc"\r\n"multi\nline"\t"q ""x"""\r\n') == [["a", "b\tc"], ["multi\nline", 'q "x"']]
    assert editing.parse_tsv("one") == [["one"]]
    assert editing.parse_tsv('"open\tquote') == [['"open', "quote"]]
    assert editing.parse_tsv('5" nail\tx\n') == [['5" nail', "x"]]


@HYPOTHESIS
@given(block=st.lists(st.lists(TSV_CELL, min_size=1, max_size=3), min_size=1, max_size=5), at=st.integers(0, 2))
def test_a_pasted_block_saves_good_cells_reports_bad_ones_and_adds_rows(owner, typed, editor, block, at):
    workspace, user = owner
    kinds = ["number", "currency", "percent", "date"]
    shown = editing.visible_columns(typed, None)
    start = next(i for i, c in enumerate(shown) if c.type == kinds[0])
    columns = [c for c in shown[start : start + 4]]
    assert [c.type for c in columns] == kinds
    rows = _row_ids(workspace, user, typed)
    before = {r: service.get_row(workspace, user, typed, r).values(typed) for r in rows}
    resp = editor("paste", text=_tsv(block), start=str(at), row_id=str(rows[at]), column_id=str(columns[0].id))
    assert resp.status_code in (200, 422), resp.get_data(as_text=True)[:300]
    body = resp.get_json()
    after_rows = _row_ids(workspace, user, typed)
    targets = after_rows[at : at + len(block)]
    assert len(targets) == len(block)
    assert after_rows[: len(rows)] == rows
    refused = 0
    for target, values in zip(targets, block, strict=True):
        stored = service.get_row(workspace, user, typed, target).values(typed)
        for column, raw in zip(columns, values, strict=False):
            try:
                expected = parse_cell(column.type, column.config, raw)
            except CellError:
                refused += 1
                expected = before[target][column.id] if target in before else None
            assert stored[column.id] == expected, (column.type, raw)
    if resp.status_code == 422:
        assert refused and body["error"]["message"]
    else:
        assert len(body["data"]["problems"]) == refused


def test_bad_input_is_a_clear_error_not_a_500(owner, typed, editor):
    workspace, user = owner
    number = _column(typed, "number")
    row = _row_ids(workspace, user, typed)[0]
    resp = editor("cells", row_id=str(row), column_id=str(number.id), value="lots")
    assert resp.status_code == 422 and "number" in resp.get_json()["error"]["message"]
    assert editor("cells", row_id="abc", column_id=str(number.id), value="1").status_code == 422
    assert editor("cells", row_id=str(10**15), column_id=str(number.id), value="1").status_code == 404
    assert editor("cells", row_id=str(row), column_id="999999999", value="1").status_code == 404
    assert editor("paste", text="", start="0", row_id=str(row), column_id=str(number.id)).status_code == 422
    moved = editor("paste", text="1", start="2", row_id=str(row), column_id=str(number.id))
    assert moved.status_code == 409 and "moved" in moved.get_json()["error"]["message"]
    assert editor("fill", row_ids=str(row), column_ids="12x").status_code == 422
    assert editor("rows/add", count="0").status_code == 422
    assert editor("rows/delete", row_ids="").status_code == 422
    assert editor("redo").get_json()["data"]["message"] == "Nothing to redo."


def test_rows_fill_clear_undo_and_redo_over_http(owner, typed, editor):
    workspace, user = owner
    text = _column(typed, "text")
    rows = _row_ids(workspace, user, typed)
    assert editor("cells", row_id=str(rows[0]), column_id=str(text.id), value="Acme").status_code == 200
    filled = editor("fill", start="0", end="2", row_id=str(rows[0]), column_ids=str(text.id)).get_json()["data"]
    assert filled["changed"] == 2 and filled["undo"] == 2
    assert [_cell(workspace, user, typed, r, text.id) for r in rows] == ["Acme"] * 3
    cleared = editor("clear", row_ids=f"{rows[1]},{rows[2]}", column_ids=str(text.id)).get_json()["data"]
    assert cleared["changed"] == 2
    added = editor("rows/add", count="2", after_row_id=str(rows[0])).get_json()["data"]
    assert _row_ids(workspace, user, typed) == [rows[0], *added["row_ids"], rows[1], rows[2]]
    deleted = editor("rows/delete", row_ids=f"{rows[0]},{added['row_ids'][1]}").get_json()["data"]
    assert deleted["removed"] == 2 and _row_ids(workspace, user, typed) == [added["row_ids"][0], rows[1], rows[2]]
    undone = editor("undo").get_json()["data"]
    assert undone["message"] == "Undid the row delete." and undone["redo"] == 1
    assert _row_ids(workspace, user, typed) == [rows[0], *added["row_ids"], rows[1], rows[2]]
    assert _cell(workspace, user, typed, rows[0], text.id) == "Acme"
    for _ in range(2):
        editor("undo")
    assert [_cell(workspace, user, typed, r, text.id) for r in rows] == ["Acme"] * 3
    assert editor("redo").get_json()["data"]["message"] == "Redid the clear."
    assert [_cell(workspace, user, typed, r, text.id) for r in rows] == ["Acme", None, None]


def test_undo_says_when_a_colleague_changed_the_cell_since(db, client, new_client, owner, typed, editor):
    workspace, _ = owner
    _, colleague = _workspace_and_user(db, "colleague")
    db.session.add(Membership(workspace_id=workspace.id, user_id=colleague.id, role="member"))
    db.session.flush()
    text = _column(typed, "text")
    row = _row_ids(workspace, colleague, typed)[0]
    editor("cells", row_id=str(row), column_id=str(text.id), value="Mine")
    other = new_client()
    login(other, colleague)
    token = csrf_token(other, f"/w/{workspace.slug}/tables/{typed.id}")
    theirs = other.post(
        f"/w/{workspace.slug}/tables/{typed.id}/cells",
        data={"row_id": row, "column_id": text.id, "value": "Theirs"},
        headers={"X-CSRFToken": token},
    )
    assert theirs.status_code == 200
    resp = editor("undo")
    assert resp.status_code == 409
    assert "someone else changed it" in resp.get_json()["error"]["message"]
    assert _cell(workspace, colleague, typed, row, text.id) == "Theirs"


EDITS = [
    ("cells", {"value": "x"}),
    ("rows/add", {}),
    ("rows/delete", {}),
    ("paste", {"text": "x", "start": "0"}),
    ("fill", {"start": "0", "end": "1"}),
    ("clear", {"start": "0", "end": "1"}),
    ("undo", {}),
    ("redo", {}),
]


@pytest.mark.parametrize(("path", "extra"), EDITS)
def test_viewers_get_403_and_other_workspaces_404_on_every_edit(db, client, owner, stranger, typed, path, extra):
    workspace, user = owner
    text = _column(typed, "text")
    rows = _row_ids(workspace, user, typed)
    data = {"row_id": rows[0], "row_ids": rows[0], "column_id": text.id, "column_ids": text.id, **extra}
    editing.save_cell(workspace, user, typed, rows[0], text.id, "Original")
    _, viewer = _workspace_and_user(db, "viewer")
    db.session.add(Membership(workspace_id=workspace.id, user_id=viewer.id, role="viewer"))
    db.session.flush()
    url = f"/w/{workspace.slug}/tables/{typed.id}/{path}"
    login(client, viewer)
    token = csrf_token(client, f"/w/{workspace.slug}/tables/{typed.id}")
    assert client.post(url, data=data, headers={"X-CSRFToken": token}).status_code == 403
    theirs, intruder = stranger
    login(client, intruder)
    token = csrf_token(client, f"/w/{theirs.slug}/tables")
    assert client.post(url, data=data, headers={"X-CSRFToken": token}).status_code == 404
    own_slug_url = f"/w/{theirs.slug}/tables/{typed.id}/{path}"
    assert client.post(own_slug_url, data=data, headers={"X-CSRFToken": token}).status_code == 404
    assert _row_ids(workspace, user, typed) == rows
    assert _cell(workspace, user, typed, rows[0], text.id) == "Original"


def test_an_edit_without_the_csrf_token_is_refused(client, owner, typed):
    workspace, user = owner
    login(client, user)
    row = _row_ids(workspace, user, typed)[0]
    resp = client.post(
        f"/w/{workspace.slug}/tables/{typed.id}/cells",
        data={"row_id": row, "column_id": _column(typed, "text").id, "value": "x"},
    )
    assert resp.status_code == 400
    assert _cell(workspace, user, typed, row, _column(typed, "text").id) is None
