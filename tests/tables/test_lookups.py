"""Lookup columns: normalised matching, modes, recompute on every change path, broken sources, indexes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from morket.core.errors import NotFound, ValidationFailed
from morket.tables import column_service, editing, formula_rows, lookups, service, storage
from morket.tables.undo import undo_last

pytestmark = pytest.mark.usefixtures("db")


def _col(table, name: str) -> int:
    return next(c.id for c in table.live_columns if c.name == name)


def _values(table, name: str) -> list:
    """The lookup column's cells in the table's order."""
    store = storage.storage_for(table)
    column = store.columns[_col(table, name)]
    from morket.extensions import db

    return [r[0] for r in db.session.execute(sa.select(column).order_by(store.rows.c.pos))]


@pytest.fixture
def pair(db, owner):
    """People (A: Email, Website) and Companies (B: Domain, Name, Email), in one workspace."""
    workspace, user = owner
    companies = service.create_table(
        workspace,
        user,
        "Companies",
        columns=[
            {"name": "Domain", "type": "domain"},
            {"name": "Name", "type": "text"},
            {"name": "Email", "type": "email"},
        ],
    )
    service.insert_rows(
        workspace,
        user,
        companies,
        [
            {"Domain": "acme.com", "Name": "Acme", "Email": "alice@example.com"},
            {"Domain": "globex.com", "Name": "Globex"},
            {"Domain": "ACME.com", "Name": "Acme two"},
            {"Domain": "", "Name": "No domain"},
        ],
    )
    people = service.create_table(
        workspace,
        user,
        "People",
        columns=[{"name": "Email", "type": "email"}, {"name": "Website", "type": "url"}],
    )
    service.insert_rows(
        workspace,
        user,
        people,
        [
            {"Email": "Alice@Example.com", "Website": "https://www.acme.com/x"},
            {"Email": "bob@example.com", "Website": "globex.com"},
            {"Email": "carol@example.com", "Website": "initech.com"},
            {"Website": ""},
        ],
    )
    db.session.flush()
    return workspace, user, people, companies


def _add(pair, name="Company", mode="first", field="Name", key="Website", source_key="Domain", **extra):
    workspace, user, people, companies = pair
    config = {
        "source_table_id": companies.id,
        "source_key_column_id": _col(companies, source_key),
        "key_column_id": _col(people, key),
        "mode": mode,
        **({"field_column_id": _col(companies, field)} if field else {}),
        **extra,
    }
    column, job = column_service.add_table_column(workspace, user, people, name, "lookup", config=config)
    assert job is None  # small tables fill in the request
    return column


def test_first_match_normalises_urls_against_domains_and_emails_by_case(pair):
    workspace, user, people, companies = pair
    _add(pair)
    assert _values(people, "Company") == ["Acme", "Globex", None, None]
    _add(pair, name="By email", key="Email", source_key="Email")
    assert _values(people, "By email") == ["Acme", None, None, None]


def test_joined_and_count_modes_and_no_match(pair):
    workspace, user, people, companies = pair
    _add(pair, name="All names", mode="joined", separator=" | ")
    _add(pair, name="Matches", mode="count", field=None)
    assert _values(people, "All names") == ["Acme | Acme two", "Globex", None, None]
    assert _values(people, "Matches") == ["2", "1", "0", "0"]
    _add(pair, name="Capped", mode="joined", limit=1)
    assert _values(people, "Capped") == ["Acme", "Globex", None, None]


def test_settings_are_checked(pair, stranger):
    workspace, user, people, companies = pair
    other_workspace, other_user = stranger
    foreign = service.create_table(
        other_workspace, other_user, "Theirs", columns=[{"name": "Domain", "type": "domain"}]
    )
    with pytest.raises(ValidationFailed) as refused:
        _add(pair, name="X", mode="sideways")
    assert "mode" in refused.value.fields
    config = {
        "source_table_id": foreign.id,
        "source_key_column_id": _col(foreign, "Domain"),
        "key_column_id": _col(people, "Website"),
        "mode": "count",
    }
    with pytest.raises(ValidationFailed) as refused:
        column_service.add_table_column(workspace, user, people, "Theirs", "lookup", config=config)
    assert "source_table_id" in refused.value.fields
    with pytest.raises(ValidationFailed) as refused:
        _add(pair, name="Y", field=None, mode="first")
    assert "field_column_id" in refused.value.fields
    assert [c.name for c in people.live_columns] == ["Email", "Website"]


def test_indexes_are_created_and_dropped_with_the_last_lookup(pair, db):
    workspace, user, people, companies = pair
    column = _add(pair)
    second = _add(pair, name="Again", mode="count", field=None)

    def names(table):
        return set(
            db.session.scalars(
                sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = 'ut' AND tablename = :t"),
                {"t": storage.rows_name(table.id)},
            )
        )

    wanted = lookups.index_name(companies.id, _col(companies, "Domain"), "domain")
    assert wanted in names(companies) and companies.lookup_source
    assert lookups.index_name(people.id, _col(people, "Website"), "domain") in names(people)
    service.delete_column(workspace, user, people, column.id)
    assert wanted in names(companies)  # the other lookup still reads it
    service.delete_column(workspace, user, people, second.id)
    assert wanted not in names(companies) and not companies.lookup_source


# --- recompute on each change path ---------------------------------------------------------------


def test_editing_the_key_cell_recomputes_the_row(pair):
    workspace, user, people, companies = pair
    _add(pair)
    rows = service.read_window(workspace, user, people, None, 0, 10)
    editing.save_cell(workspace, user, people, rows[2].id, _col(people, "Website"), "http://globex.com/about")
    assert _values(people, "Company")[2] == "Globex"
    service.update_cell(workspace, user, people, rows[0].id, _col(people, "Website"), "nowhere.org")
    assert _values(people, "Company")[0] is None


def test_source_edits_inserts_and_deletes_recompute_only_matching_rows(pair):
    workspace, user, people, companies = pair
    _add(pair)
    _add(pair, name="Matches", mode="count", field=None)
    b_rows = service.read_window(workspace, user, companies, None, 0, 10)
    # an API edit of the field
    service.update_cell(workspace, user, companies, b_rows[0].id, _col(companies, "Name"), "Acme Inc")
    assert _values(people, "Company") == ["Acme Inc", "Globex", None, None]
    # a key edit moves a match away (old key) and to another row (new key)
    service.update_cell(workspace, user, companies, b_rows[1].id, _col(companies, "Domain"), "initech.com")
    assert _values(people, "Company") == ["Acme Inc", None, "Globex", None]
    # inserted rows
    service.insert_rows(workspace, user, companies, [{"Domain": "www.globex.com", "Name": "Globex again"}])
    assert _values(people, "Company")[1] == "Globex again"
    # deleted rows (their keys are read before the delete)
    service.delete_rows(workspace, user, companies, [b_rows[0].id])
    assert _values(people, "Company")[0] == "Acme two"
    assert _values(people, "Matches") == ["1", "1", "1", "0"]


def test_paste_bulk_write_and_undo_recompute(pair):
    workspace, user, people, companies = pair
    _add(pair)
    b_rows = service.read_window(workspace, user, companies, None, 0, 10)
    old = service.read_cells(companies, [b_rows[1].id], lock=True)
    new = {b_rows[1].id: {_col(companies, "Name"): "Globex Corp"}}
    forward, backward, changes = service.cell_steps(companies, old, new)
    service.write_cells(workspace, companies, changes)  # what bulk edit and dedupe merge call
    assert _values(people, "Company")[1] == "Globex Corp"
    a_rows = service.read_window(workspace, user, people, None, 0, 10)
    editing.paste_block(workspace, user, people, None, [a_rows[3].id], _col(people, "Website"), [["acme.com"]])
    assert _values(people, "Company")[3] == "Acme"
    undo_last(workspace, user, people)
    assert _values(people, "Company")[3] is None


def test_added_rows_get_the_no_match_value(pair):
    workspace, user, people, companies = pair
    _add(pair, name="Matches", mode="count", field=None)
    editing.add_rows(workspace, user, people, 2)
    assert _values(people, "Matches")[-2:] == ["0", "0"]


def test_deleting_the_source_table_or_its_key_leaves_a_clear_error(pair, db):
    workspace, user, people, companies = pair
    column = _add(pair)
    service.delete_column(workspace, user, companies, _col(companies, "Domain"))
    assert "key column" in column.config["error"]
    assert _values(people, "Company") == [None] * 4
    # restoring the key column mends the lookup
    deleted = next(c for c in companies.columns if c.name == "Domain")
    service.restore_column(workspace, user, companies, deleted.id)
    assert "error" not in column.config
    assert _values(people, "Company")[:2] == ["Acme", "Globex"]
    service.delete_table(workspace, user, companies)
    db.session.refresh(column)
    assert column.config["error"] == "The table this lookup reads was deleted."
    # writes to the lookup's own table keep working
    rows = service.read_window(workspace, user, people, None, 0, 10)
    service.update_cell(workspace, user, people, rows[0].id, _col(people, "Website"), "acme.com")
    with pytest.raises(NotFound):
        service.get_table_or_404(workspace, companies.id)


def test_lookup_cells_cannot_be_edited(pair):
    workspace, user, people, companies = pair
    column = _add(pair)
    rows = service.read_window(workspace, user, people, None, 0, 10)
    with pytest.raises(ValidationFailed):
        service.update_cell(workspace, user, people, rows[0].id, column.id, "typed")


def test_preview_shows_the_first_rows(pair):
    workspace, user, people, companies = pair
    config = {
        "source_table_id": companies.id,
        "source_key_column_id": _col(companies, "Domain"),
        "key_column_id": _col(people, "Website"),
        "field_column_id": _col(companies, "Name"),
        "mode": "joined",
    }
    shown = lookups.preview(people, config)
    assert shown == [
        {"key": "https://www.acme.com/x", "value": "Acme, Acme two"},
        {"key": "https://globex.com", "value": "Globex"},
        {"key": "https://initech.com", "value": None},
    ]


# --- a property: the lookup equals a Python dict computation ---------------------------------------

KEYS = st.sampled_from(["a", "A ", "b", " b", "c", "", "d  e", "D E"])


def _norm(text):
    return " ".join((text or "").split()).lower() if text is not None else ""


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a_keys=st.lists(KEYS, min_size=1, max_size=8),
    b_rows=st.lists(st.tuples(KEYS, st.sampled_from(["x", "y", "z", ""])), max_size=8),
)
def test_lookup_equals_a_dict_computation(db, owner, a_keys, b_rows):
    workspace, user = owner
    nested = db.session.begin_nested()
    try:
        b = service.create_table(
            workspace, user, "B", columns=[{"name": "K", "type": "text"}, {"name": "V", "type": "text"}]
        )
        if b_rows:
            service.insert_rows(workspace, user, b, [{"K": k, "V": v} for k, v in b_rows])
        a = service.create_table(workspace, user, "A", columns=[{"name": "K", "type": "text"}])
        service.insert_rows(workspace, user, a, [{"K": k} for k in a_keys])
        base = {"source_table_id": b.id, "source_key_column_id": _col(b, "K"), "key_column_id": _col(a, "K")}
        for mode in ("first", "joined", "count"):
            config = {**base, "mode": mode, "field_column_id": _col(b, "V")}
            column_service.add_table_column(workspace, user, a, mode, "lookup", config=config)
        index: dict[str, list[str | None]] = {}
        for k, v in b_rows:
            stored_k = k.strip() or None
            if stored_k and _norm(stored_k):
                index.setdefault(_norm(stored_k), []).append(v.strip() or None)
        first, joined, count = [], [], []
        for k in a_keys:
            stored = k.strip() or None
            found = index.get(_norm(stored), []) if stored else []
            first.append(found[0] if found else None)
            kept = [v for v in found if v]
            joined.append(", ".join(kept[:10]) or None)
            count.append(str(len(found)))
        assert _values(a, "first") == first
        assert _values(a, "joined") == joined
        assert _values(a, "count") == count
    finally:
        nested.rollback()


def test_a_view_filters_and_searches_lookup_values_and_follows_the_source(pair):
    workspace, user, people, companies = pair
    column = _add(pair)
    condition = {"column_id": column.id, "operator": "contains", "value": "glob"}
    view = service.create_view(
        workspace, user, people, "Globex people", filters={"op": "and", "conditions": [condition]}
    )
    rows = service.read_window(workspace, user, people, view, 0, 10)
    assert [r.values(people)[column.id] for r in rows] == ["Globex"]
    found, count = service.search_rows(workspace, user, people, "acme")
    assert count == 1 and found[0].values(people)[column.id] == "Acme"
    # the source changes: the view's order is rebuilt on its next read
    b_rows = service.read_window(workspace, user, companies, None, 0, 10)
    service.update_cell(workspace, user, companies, b_rows[0].id, _col(companies, "Name"), "Globex subsidiary")
    rows = service.read_window(workspace, user, people, view, 0, 10)
    assert [r.values(people)[column.id] for r in rows] == ["Globex subsidiary", "Globex"]


def test_a_formula_reading_a_lookup_follows_a_change_in_the_source(pair):
    workspace, user, people, companies = pair
    _add(pair)
    column_service.add_table_column(
        workspace, user, people, "Shout", "formula", config={"expression": 'CONCAT({Company}, "!")'}
    )
    formula_rows.recompute_formulas(workspace, people, lo=0, hi=2**62)  # what the formula's job does
    assert _values(people, "Shout")[:2] == ["Acme!", "Globex!"]
    b_rows = service.read_window(workspace, user, companies, None, 0, 10)
    service.update_cell(workspace, user, companies, b_rows[1].id, _col(companies, "Name"), "Globex Corp")
    assert _values(people, "Shout")[:2] == ["Acme!", "Globex Corp!"]
    a_rows = service.read_window(workspace, user, people, None, 0, 10)
    service.update_cell(workspace, user, people, a_rows[0].id, _col(people, "Website"), "globex.com")
    assert _values(people, "Shout")[:2] == ["Globex Corp!", "Globex Corp!"]


def test_the_recompute_by_key_can_use_both_indexes(pair, db):
    """The statements' key expressions are the indexes' expressions (else every edit would scan)."""
    workspace, user, people, companies = pair
    column = _add(pair)
    found = lookups.resolve(column)
    db.session.execute(sa.text("SET LOCAL enable_seqscan = off"))
    plans = []
    for statement in lookups.fill_statements(found, "keys"):
        plan = db.session.scalars(sa.text("EXPLAIN " + statement), {"keys": ["acme.com"], "sep": ", "}).all()
        plans.append("\n".join(plan))
    db.session.execute(sa.text("SET LOCAL enable_seqscan = on"))
    a_index = lookups.index_name(people.id, _col(people, "Website"), "domain")
    b_index = lookups.index_name(companies.id, _col(companies, "Domain"), "domain")
    assert all(a_index in p for p in plans), plans
    assert b_index in plans[1], plans[1]
