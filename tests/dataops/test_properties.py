"""Property tests: malformed CSV files never break an import or a table; export then import is lossless."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morket.core.errors import MorketError
from morket.dataops import service, tasks
from morket.tables import service as tables
from tests.dataops.conftest import default_mapping, export_rows

PROPERTY_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

_field_text = st.text(
    alphabet=st.sampled_from(list('ab1,;"\t|\r\n\x00 é=-') + ["\u00ff", "\u2028"]), min_size=0, max_size=12
)


@st.composite
def malformed_csv(draw) -> bytes:
    """Ragged rows, stray quotes, NUL bytes, mixed newlines, invalid UTF-8 and odd encodings."""
    width = draw(st.integers(1, 4))
    rows = draw(st.lists(st.lists(_field_text, min_size=0, max_size=width + 2), min_size=0, max_size=8))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [",".join(f"h{i}" for i in range(width))]
    for row in rows:
        lines.append(",".join(row))
        newline = draw(st.sampled_from(["\n", "\r\n", "\r", newline]))
    text = newline.join(lines)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252-ish"]))
    data = text.encode("utf-8" if encoding == "cp1252-ish" else encoding, errors="surrogatepass")
    if encoding == "cp1252-ish":
        data = text.encode("cp1252", errors="replace")
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(data)))
        data = data[:cut] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b'"', b"\xe2\x82"])) + data[cut:]
    return data


def _target(db, workspace, user):
    table = tables.create_table(
        workspace, user, "Target", columns=[{"name": "Text", "type": "text"}, {"name": "Number", "type": "number"}]
    )
    tables.insert_rows(workspace, user, table, [{"Text": "keep me", "Number": 1}])
    db.session.commit()
    return table


def _attempt(db, workspace, user, data: bytes, table) -> str:
    """Import ``data`` into ``table`` (or a new table); return the outcome, asserting it is explained."""
    try:
        run = service.upload_import(workspace, user, io.BytesIO(data), "fuzz.csv")
        header = run.settings["header"]
        if table is None:
            mapping = default_mapping(run)
        else:
            text_id, number_id = (c.id for c in table.live_columns)
            mapping = [{"source": 0, "target": text_id}]
            if len(header) > 1:
                mapping.append({"source": 1, "target": number_id})
        service.start_import(workspace, user, run, mapping=mapping, table=table)
        db.session.commit()
    except MorketError as exc:
        db.session.rollback()
        assert exc.message.strip()
        return "refused"
    run = tasks.run_import(run.id)
    assert run.status in ("done", "needs_review", "failed"), run.status
    assert run.message
    return run.status


@PROPERTY_SETTINGS
@given(data=malformed_csv())
def test_malformed_files_never_break_the_target_table(db, owner, data):
    workspace, user = owner
    table = _target(db, workspace, user)
    before = export_rows(workspace, user, table, raw=True)

    outcome = _attempt(db, workspace, user, data, table)

    table = tables.get_table_or_404(workspace, table.id)
    if outcome != "done":
        assert export_rows(workspace, user, table, raw=True) == before
    else:
        assert export_rows(workspace, user, table, raw=True)[:1] == before


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty file"),
        pytest.param(b"a,b,c\r\n", id="header alone"),
        pytest.param(b'a,b\n1,"' + b"x" * 1_048_576 + b'"\n2,y\n', id="1 MB field"),
        pytest.param(b"x" * 1_048_576, id="1 MB header field"),
        pytest.param(
            ",".join(f"c{i}" for i in range(10_000)).encode() + b"\n" + b"1," * 9_999 + b"1\n", id="10,000 columns"
        ),
        pytest.param(b"a,b\n1,2\x00\n3,4\n", id="NUL byte"),
        pytest.param(b'a,b\n1,"2\n3,4\n', id="unclosed quote"),
        pytest.param(b"a,b\r1,2\n3,4\r\n5,6", id="mixed newlines"),
        pytest.param(b"a,b\n\xff\xfe\xfd,2\n", id="invalid UTF-8"),
        pytest.param(b"\x00\x00\x00\x00", id="only NULs"),
        pytest.param(b'a,b\nx,"1\t2"\ny,"\t"\n', id="tabs in a number cell"),
    ],
)
@pytest.mark.parametrize("into", ["existing", "new"])
def test_hostile_files_are_explained_and_change_nothing_on_failure(db, owner, data, into):
    workspace, user = owner
    table = _target(db, workspace, user)
    count = len(tables.list_tables(workspace))
    before = export_rows(workspace, user, table, raw=True)

    outcome = _attempt(db, workspace, user, data, table if into == "existing" else None)

    if outcome != "done":
        assert export_rows(workspace, user, tables.get_table_or_404(workspace, table.id), raw=True) == before
        assert len(tables.list_tables(workspace)) == count


_cell_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
_row = st.fixed_dictionaries(
    {
        "Name": _cell_text,
        "Amount": st.one_of(st.none(), st.decimals(min_value=-(10**14), max_value=10**14, places=4)),
        "Day": st.one_of(st.none(), st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))),
        "Flag": st.one_of(st.none(), st.booleans()),
    }
)
ROUND_TRIP_COLUMNS = [
    {"name": "Name", "type": "text"},
    {"name": "Amount", "type": "number"},
    {"name": "Day", "type": "date"},
    {"name": "Flag", "type": "checkbox"},
]


@PROPERTY_SETTINGS
@given(rows=st.lists(_row, min_size=1, max_size=12))
def test_raw_export_then_import_gives_back_the_same_table(db, owner, rows):
    workspace, user = owner
    original = tables.create_table(workspace, user, "Original", columns=ROUND_TRIP_COLUMNS)
    tables.insert_rows(workspace, user, original, rows)
    plan = service.plan_export(workspace, user, original, None, raw=True)
    exported = b"".join(service.stream_export(plan))

    run = service.upload_import(workspace, user, io.BytesIO(exported), "round-trip.csv")
    mapping = [
        {"source": i, "target": "new", "name": c["name"], "type": c["type"]} for i, c in enumerate(ROUND_TRIP_COLUMNS)
    ]
    service.start_import(workspace, user, run, mapping=mapping)
    db.session.commit()
    run = tasks.run_import(run.id)

    assert run.status == "done", run.message
    copy = tables.get_table_or_404(workspace, run.table_id)
    original = tables.get_table_or_404(workspace, original.id)
    before = [r.cells for r in tables.read_window(workspace, user, original, None, 0, 100)]
    after = [r.cells for r in tables.read_window(workspace, user, copy, None, 0, 100)]
    assert after == before
    assert all(isinstance(r[1], Decimal | None) for r in after)
