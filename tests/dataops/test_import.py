"""CSV import: formats, typing, error rows and the user's decision, dedupe, all-or-nothing, tenancy."""

from __future__ import annotations

import csv
import io

import pytest
import sqlalchemy as sa

from morket.core.errors import Conflict, NotFound, ValidationFailed
from morket.dataops import service, tasks
from morket.tables import service as tables
from tests.dataops.conftest import default_mapping, export_rows, run_import

GTM = 'Company;Domain;Employees\r\nAcme "Rockets" GmbH;acme.de;120\r\nZoë Café;zoe.fr;8\r\n'


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16", b""), ("cp1252", b""), ("utf-16-le", b"")],
)
def test_encodings_and_semicolons_are_detected(db, owner, encoding, prefix):
    workspace, user = owner
    data = prefix + GTM.replace('"Rockets"', '""Rockets""').replace("Acme ", '"Acme ').replace(
        "GmbH;", 'GmbH";'
    ).encode(encoding)

    run = run_import(db, workspace, user, data)

    assert run.status == "done", run.message
    assert run.settings["delimiter"] == ";"
    table = tables.get_table_or_404(workspace, run.table_id)
    assert [(c.name, c.type) for c in table.live_columns] == [
        ("Company", "text"),
        ("Domain", "domain"),
        ("Employees", "number"),
    ]
    assert export_rows(workspace, user, table) == [
        {"Company": 'Acme "Rockets" GmbH', "Domain": "acme.de", "Employees": "120"},
        {"Company": "Zoë Café", "Domain": "zoe.fr", "Employees": "8"},
    ]


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
def test_delimiters(db, owner, delimiter):
    workspace, user = owner
    text = delimiter.join(["name", "city"]) + "\n" + delimiter.join(["Ann", "Oslo"]) + "\n"
    run = run_import(db, workspace, user, text.encode())
    assert run.status == "done", run.message
    table = tables.get_table_or_404(workspace, run.table_id)
    assert export_rows(workspace, user, table) == [{"name": "Ann", "city": "Oslo"}]


def test_zip_codes_stay_text(db, owner):
    workspace, user = owner
    run = run_import(db, workspace, user, b"zip,n\n08123,1\n10115,2\n")
    table = tables.get_table_or_404(workspace, run.table_id)
    assert [c.type for c in table.live_columns] == ["text", "number"]
    assert [r["zip"] for r in export_rows(workspace, user, table)] == ["08123", "10115"]


def _bad_file() -> bytes:
    return b"name,employees\nAcme,10\nBeta,lots\nGamma,30\nDelta\n"


def _numbers_mapping():
    return [
        {"source": 0, "target": "new", "name": "name", "type": "text"},
        {"source": 1, "target": "new", "name": "employees", "type": "number"},
    ]


def test_error_rows_wait_for_a_decision_and_leave_nothing_behind(db, owner):
    workspace, user = owner
    before = len(tables.list_tables(workspace))

    run = run_import(db, workspace, user, _bad_file(), mapping=_numbers_mapping())

    assert run.status == "needs_review"
    assert run.error_count == 2 and run.rows_in == 4
    assert "2 of 4 rows" in run.message
    assert len(tables.list_tables(workspace)) == before  # the new table was rolled back too
    errors = list(csv.reader(io.StringIO(b"".join(service.read_errors(run)).decode())))
    assert errors[0] == ["line", "error", "name", "employees"]
    assert errors[1][:2] == ["3", "employees: “lots” is not a number."]
    assert errors[2][:2] == ["5", "Expected 2 values, found 1."]

    service.import_rest(workspace, user, run)
    db.session.commit()
    run = tasks.run_import(run.id)

    assert run.status == "done" and run.rows_out == 2 and run.error_count == 2
    table = tables.get_table_or_404(workspace, run.table_id)
    assert export_rows(workspace, user, table) == [
        {"name": "Acme", "employees": "10"},
        {"name": "Gamma", "employees": "30"},
    ]


def test_skip_errors_up_front_imports_the_rest(db, owner):
    workspace, user = owner
    run = run_import(db, workspace, user, _bad_file(), mapping=_numbers_mapping(), skip_errors=True)
    assert run.status == "done" and run.rows_out == 2
    assert "2 rows with errors left out" in run.message


def test_append_to_existing_table_maps_and_skips_columns(db, owner):
    workspace, user = owner
    table = tables.create_table(
        workspace, user, "Leads", columns=[{"name": "Email", "type": "email"}, {"name": "Score", "type": "number"}]
    )
    tables.insert_rows(workspace, user, table, [{"Email": "old@acme.com", "Score": 1}])
    email, score = (c.id for c in table.live_columns)
    data = b"score,ignored,mail,city\n5,x,ann@beta.io,Oslo\n7,y,bob@gamma.io,Rome\n"
    run = service.upload_import(workspace, user, io.BytesIO(data), "leads.csv")
    service.start_import(
        workspace,
        user,
        run,
        table=table,
        mapping=[
            {"source": 0, "target": str(score)},
            {"source": 1, "target": "skip"},
            {"source": 2, "target": email},
            {"source": 3, "target": "new", "name": "City", "type": "text"},
        ],
    )
    db.session.commit()
    run = tasks.run_import(run.id)

    assert run.status == "done", run.message
    table = tables.get_table_or_404(workspace, table.id)
    assert table.row_count == 3
    assert export_rows(workspace, user, table) == [
        {"Email": "old@acme.com", "Score": "1", "City": ""},
        {"Email": "ann@beta.io", "Score": "5", "City": "Oslo"},
        {"Email": "bob@gamma.io", "Score": "7", "City": "Rome"},
    ]


def _crm(db, workspace, user):
    table = tables.create_table(
        workspace,
        user,
        "CRM",
        columns=[{"name": "Email", "type": "email"}, {"name": "Site", "type": "url"}, {"name": "Note", "type": "text"}],
    )
    tables.insert_rows(
        workspace,
        user,
        table,
        [
            {"Email": "Ann@Acme.com", "Site": "https://www.acme.com/", "Note": "first"},
            {"Email": "bob@beta.io", "Site": "https://beta.io", "Note": "keep"},
        ],
    )
    return table


@pytest.mark.parametrize(
    ("on_duplicate", "notes"), [("skip", ["first", "keep", "new"]), ("update", ["changed", "keep", "new"])]
)
def test_dedupe_key_is_normalised_and_skips_or_updates(db, owner, on_duplicate, notes):
    workspace, user = owner
    table = _crm(db, workspace, user)
    email, site, note = (c.id for c in table.live_columns)
    data = (
        b"email,site,note\n"
        b"  ANN@acme.com ,HTTP://acme.com,changed\n"
        b"carl@gamma.io,gamma.io,new\n"
        b"CARL@gamma.io,gamma.io,duplicate in the file\n"
    )
    run = service.upload_import(workspace, user, io.BytesIO(data), "crm.csv")
    mapping = [{"source": 0, "target": email}, {"source": 1, "target": site}, {"source": 2, "target": note}]
    service.start_import(workspace, user, run, table=table, mapping=mapping, dedupe=[0, 1], on_duplicate=on_duplicate)
    db.session.commit()
    run = tasks.run_import(run.id)

    assert run.status == "done", run.message
    assert run.rows_out == 1
    assert run.rows_updated == (1 if on_duplicate == "update" else 0)
    assert run.rows_skipped == (1 if on_duplicate == "update" else 2)  # the file's own duplicate, and Ann
    table = tables.get_table_or_404(workspace, table.id)
    assert [r["Note"] for r in export_rows(workspace, user, table)] == notes
    assert table.row_count == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"\xef\xbb\xbf\r\n\r\n", "The file is empty"),
        (b"a,b,c\n", "header but no rows"),
        (("a,b\n1,\xe9\n" + "x,y\n" * 20000).encode("utf-8") + b"\xff\xfe,z\n", "not valid UTF-8"),
    ],
)
def test_unreadable_files_fail_clearly_at_upload_or_load(db, owner, data, message):
    workspace, user = owner
    before = len(tables.list_tables(workspace))
    try:
        run = run_import(db, workspace, user, data)
    except ValidationFailed as exc:
        assert message in exc.message
    else:
        assert run.status == "failed"
        assert message in run.message and "Nothing was imported" in run.message
    assert len(tables.list_tables(workspace)) == before


def test_failed_append_leaves_existing_table_exactly_as_it_was(db, owner):
    workspace, user = owner
    table = _crm(db, workspace, user)
    before = export_rows(workspace, user, table, raw=True)
    email = table.live_columns[0].id
    body = b"email\n" + b"".join(b"p%d@x.io\n" % i for i in range(20_000)) + b"\xff\n"
    run = service.upload_import(workspace, user, io.BytesIO(body), "big.csv")
    service.start_import(workspace, user, run, table=table, mapping=[{"source": 0, "target": email}])
    db.session.commit()
    run = tasks.run_import(run.id)
    assert run.status == "failed"
    table = tables.get_table_or_404(workspace, table.id)
    assert table.row_count == 2
    assert export_rows(workspace, user, table, raw=True) == before


def test_a_value_the_database_refuses_fails_the_import_and_leaves_the_table_and_session_usable(db, owner):
    workspace, user = owner
    table = tables.create_table(workspace, user, "Scores", columns=[{"name": "Score", "type": "number"}])
    tables.insert_rows(workspace, user, table, [{"Score": 12}])
    score = table.live_columns[0]
    # Storage narrower than the parser's limits stands in for any value the COPY refuses.
    db.session.execute(
        sa.text(f"ALTER TABLE ut.{table.storage_name} ALTER COLUMN {score.storage_name} TYPE numeric(4, 1)")
    )
    db.session.commit()
    before = export_rows(workspace, user, table, raw=True)
    run = service.upload_import(workspace, user, io.BytesIO(b"score\n7\n123456\n"), "scores.csv")
    service.start_import(workspace, user, run, table=table, mapping=[{"source": 0, "target": str(score.id)}])
    db.session.commit()

    run = tasks.run_import(run.id)

    assert run.status == "failed"
    assert "numeric field overflow" in run.message and "Nothing was imported" in run.message
    table = tables.get_table_or_404(workspace, table.id)
    assert table.row_count == 1
    assert export_rows(workspace, user, table, raw=True) == before


def test_upload_cap_is_enforced_while_streaming(db, owner):
    workspace, user = owner
    with pytest.raises(ValidationFailed, match="larger than the import limit"):
        service.upload_import(workspace, user, io.BytesIO(b"a\n" * 1000), "x.csv", max_bytes=100)


def test_mapping_errors_are_clear(db, owner):
    workspace, user = owner
    run = service.upload_import(workspace, user, io.BytesIO(b"a,b\n1,2\n"), "x.csv")
    with pytest.raises(ValidationFailed, match="at least one"):
        service.start_import(workspace, user, run, mapping=[{"source": 0, "target": "skip"}])
    with pytest.raises(ValidationFailed, match="does not have"):
        service.start_import(workspace, user, run, mapping=[{"source": 9, "target": "new"}])
    with pytest.raises(ValidationFailed, match="dedupe key"):
        service.start_import(workspace, user, run, mapping=default_mapping(run)[:1], dedupe=[1])


def test_another_workspace_cannot_reach_an_import(db, owner, stranger):
    workspace, user = owner
    other, intruder = stranger
    run = service.upload_import(workspace, user, io.BytesIO(b"a\n1\n"), "x.csv")
    with pytest.raises(NotFound):
        service.get_run_or_404(other, run.id)
    with pytest.raises(NotFound):
        service.start_import(other, intruder, run, mapping=default_mapping(run))
    with pytest.raises(NotFound):
        service.cancel_run(other, intruder, run)


def test_cancel_before_the_job_runs(db, owner):
    workspace, user = owner
    run = service.upload_import(workspace, user, io.BytesIO(b"a\n1\n"), "x.csv")
    service.start_import(workspace, user, run, mapping=default_mapping(run))
    service.cancel_run(workspace, user, run)
    db.session.commit()
    assert tasks.run_import(run.id).status == "cancelled"
    with pytest.raises(Conflict):
        service.cancel_run(workspace, user, run)


def test_every_importable_type_loads_through_copy(db, owner):
    workspace, user = owner
    table = tables.create_table(
        workspace,
        user,
        "Types",
        columns=[
            {"name": "Tags", "type": "multi_select", "config": {"options": ['A "x"', "B\\y"]}},
            {"name": "Data", "type": "json"},
            {"name": "Won", "type": "checkbox"},
            {"name": "When", "type": "datetime"},
            {"name": "Price", "type": "currency"},
            {"name": "Count", "type": "number"},
            {"name": "Day", "type": "date"},
            {"name": "Note", "type": "long_text"},
        ],
    )
    data = (
        b'tags,data,won,when,price,count,day,note\n"A ""x"", B\\y","[""a"", 1]",yes,2024-05-01T10:00:00+02:00,'
        b'"$1,200.50","1,000",2024-02-29,"tab\tand\\back"\n'
    )
    run = service.upload_import(workspace, user, io.BytesIO(data), "types.csv")
    mapping = [{"source": i, "target": c.id} for i, c in enumerate(table.live_columns)]
    service.start_import(workspace, user, run, table=table, mapping=mapping)
    db.session.commit()
    run = tasks.run_import(run.id)
    assert run.status == "done", run.message
    row = tables.read_window(workspace, user, tables.get_table_or_404(workspace, table.id), None, 0, 1)[0]
    tags, payload, won, when, price, count, day, note = row.cells
    assert tags == ['A "x"', "B\\y"] and payload == ["a", 1] and won is True
    assert when.isoformat() == "2024-05-01T08:00:00+00:00"
    assert str(price) == "1200.50" and str(count) == "1000" and day.isoformat() == "2024-02-29"
    assert note == "tab\tand\\back"


POLISH = (
    "Firma;Miasto;Pracownicy\r\nZakład Usług Leśnych Świątek;Łódź;12\r\nPrzedsiębiorstwo Żółć Spółka;Gdańsk;340\r\n"
)
JAPANESE = (
    "会社名,都市,従業員数\r\n"
    "株式会社トヨタ自動車,豊田市,70000\r\n"
    "ソニーグループ株式会社,東京,110000\r\n"
    "任天堂株式会社,京都,7000\r\n"
)


@pytest.mark.parametrize(
    ("text", "encoding", "detected"),
    [(POLISH, "iso8859_2", "iso8859_2"), (POLISH, "cp1250", "cp1250"), (JAPANESE, "shift_jis", "cp932")],
)
def test_legacy_code_pages_are_detected_and_read_correctly(db, owner, text, encoding, detected):
    workspace, user = owner

    run = run_import(db, workspace, user, text.encode(encoding))

    assert run.status == "done", run.message
    assert run.settings["encoding"] == detected
    table = tables.get_table_or_404(workspace, run.table_id)
    header, *lines = [line.split(run.settings["delimiter"]) for line in text.strip().split("\r\n")]
    assert [c.name for c in table.live_columns] == header
    assert export_rows(workspace, user, table) == [dict(zip(header, line, strict=True)) for line in lines]


def test_email_url_domain_and_yes_no_columns_are_typed(db, owner):
    workspace, user = owner
    data = (
        b"Email,Website,Domain,Customer,Note\n"
        b"ann@acme.com,https://acme.com/about,acme.com,yes,first\n"
        b"Bob@Beta.IO,www.beta.io,beta.io,no,second\n"
        b",,,,\n"
    )

    run = run_import(db, workspace, user, data)

    assert run.status == "done", run.message
    table = tables.get_table_or_404(workspace, run.table_id)
    assert [c.type for c in table.live_columns] == ["email", "url", "domain", "checkbox", "text"]
    assert [list(r.values()) for r in export_rows(workspace, user, table)[:2]] == [
        ["ann@acme.com", "https://acme.com/about", "acme.com", "true", "first"],
        ["Bob@beta.io", "https://www.beta.io", "beta.io", "false", "second"],
    ]


def test_dedupe_on_an_imported_email_column_compares_emails(db, owner):
    from morket.dataops import dedupe

    workspace, user = owner
    run = run_import(db, workspace, user, b"name,email\nAnn,ann@acme.com\nAnn B,ANN@acme.com\nBob,bob@beta.io\n")
    table = tables.get_table_or_404(workspace, run.table_id)
    email = table.live_columns[1]

    (part,) = dedupe.dedupe_key(table, [email.id])

    assert part.kind == "email"
    found = dedupe.find_duplicates(workspace, user, table, [part])
    assert found.group_count == 1 and found.row_count == 2


def test_error_file_shows_nul_bytes_and_says_how_much_of_a_long_value_was_cut(db, owner):
    workspace, user = owner
    long_value = "x" * 2_000_000
    data = f'name,n\nfine,1\n"nul\x00here",2\n"{long_value}",3\n'.encode()

    run = run_import(db, workspace, user, data, mapping=_numbers_mapping())

    assert run.status == "needs_review" and run.error_count == 2
    raw = b"".join(service.read_errors(run))
    assert b"\x00" not in raw
    errors = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert errors[1][:3] == ["3", "name: Text cannot contain a NUL character.", "nul\u2400here"]
    assert errors[2][:2] == ["4", "name: Text is longer than 10,000 characters."]
    cut = errors[2][2]
    assert cut.startswith("x" * 1000) and cut.endswith("… [cut: 1,999,000 more characters not shown]")
    assert len(cut) < 1100


def test_ragged_lines_are_named_for_the_review(db, owner):
    workspace, user = owner
    data = b"name,employees\nAcme,10\nBeta,20,extra\nGamma,30\nDelta\n"

    run = run_import(db, workspace, user, data, mapping=_numbers_mapping())

    assert run.status == "needs_review"
    assert run.settings["ragged_lines"] == [3, 5] and run.settings["ragged_count"] == 2
    assert service.import_warning(run) == "Lines 3 and 5 do not have 2 values like the header row."
    assert run.settings["error_sample"] == [[3, "Expected 2 values, found 3."], [5, "Expected 2 values, found 1."]]
    assert run.message == (
        "2 of 4 rows cannot be imported. Download the error file, then import the other 2 rows or cancel."
    )
