"""Filters and search: hostile text stays data, results match an independent computation."""

from __future__ import annotations

import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from morket.core.errors import ValidationFailed
from morket.tables import service

HOSTILE = [
    "'; DROP TABLE tables; --",
    "%",
    "_",
    "\\",
    "\\%",
    "' OR '1'='1",
    '"; SELECT pg_sleep(5); --',
    "$$ || $$",
    "ut.t_1",
    "Robert'); DELETE FROM ut.t_1 WHERE ('1'='1",
    "ünï☃",
]


@pytest.fixture
def words_table(db, owner):
    workspace, user = owner
    table = service.create_table(
        workspace,
        user,
        "Words",
        columns=[
            {"name": "Word", "type": "text"},
            {"name": "Note", "type": "long_text"},
            {"name": "Size", "type": "number"},
        ],
    )
    values = [*HOSTILE, "plain", "100% sure", "under_score", "back\\slash", "PLAIN words", None]
    service.insert_rows(
        workspace, user, table, [{"Word": v, "Note": f"note {i}", "Size": i} for i, v in enumerate(values)]
    )
    return table


def _words(owner, table, view) -> list[str | None]:
    workspace, user = owner
    word = next(c.id for c in table.live_columns if c.name == "Word")
    return [r.values(table)[word] for r in service.read_window(workspace, user, table, view, 0, 500)]


def _all_words(db, table) -> list[str | None]:
    column = next(c for c in table.live_columns if c.name == "Word").storage_name
    return list(db.session.execute(text(f"SELECT {column} FROM ut.{table.storage_name} ORDER BY pos")).scalars())  # noqa: S608


@pytest.mark.parametrize("needle", HOSTILE)
def test_hostile_contains_matches_literally(db, owner, words_table, needle):
    workspace, user = owner
    word = next(c.id for c in words_table.live_columns if c.name == "Word")
    view = service.create_view(
        workspace,
        user,
        words_table,
        "Hostile",
        filters={"op": "and", "conditions": [{"column_id": word, "operator": "contains", "value": needle}]},
    )
    expected = [w for w in _all_words(db, words_table) if w is not None and needle.lower() in w.lower()]
    assert _words(owner, words_table, view) == expected
    assert service.count_rows(workspace, user, words_table, view) == len(expected)
    assert service.count_rows(workspace, user, words_table) == 17, "the table itself is untouched"


@pytest.mark.parametrize("needle", HOSTILE)
def test_hostile_equals_and_search(db, owner, words_table, needle):
    workspace, user = owner
    word = next(c.id for c in words_table.live_columns if c.name == "Word")
    view = service.create_view(
        workspace,
        user,
        words_table,
        "Exact",
        filters={"op": "or", "conditions": [{"column_id": word, "operator": "equals", "value": needle}]},
    )
    assert _words(owner, words_table, view) == [needle]
    rows, total = service.search_rows(workspace, user, words_table, needle)
    expected = [w for w in _all_words(db, words_table) if w is not None and needle.strip().lower() in w.lower()]
    assert total == len(expected) == len(rows)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(needle=st.text(alphabet=string.printable.replace("\x0b", "").replace("\x0c", ""), min_size=1, max_size=6))
def test_contains_agrees_with_python(db, owner, words_table, needle):
    workspace, user = owner
    word = next(c.id for c in words_table.live_columns if c.name == "Word")
    view = service.create_view(
        workspace,
        user,
        words_table,
        "Fuzz",
        filters={"conditions": [{"column_id": word, "operator": "starts_with", "value": needle}]},
    )
    expected = [w for w in _all_words(db, words_table) if w is not None and w.lower().startswith(needle.lower())]
    assert _words(owner, words_table, view) == expected


def test_number_filters_and_or_groups(db, owner, words_table):
    workspace, user = owner
    size = next(c.id for c in words_table.live_columns if c.name == "Size")
    word = next(c.id for c in words_table.live_columns if c.name == "Word")
    view = service.create_view(
        workspace,
        user,
        words_table,
        "Groups",
        sort=[{"column_id": size, "dir": "desc"}],
        filters={
            "op": "or",
            "conditions": [
                {"column_id": size, "operator": "between", "value": [2, "4"]},
                {
                    "op": "and",
                    "conditions": [
                        {"column_id": size, "operator": "gte", "value": "15"},
                        {"column_id": word, "operator": "is_not_empty"},
                    ],
                },
            ],
        },
    )
    sizes = [r.values(words_table)[size] for r in service.read_window(workspace, user, words_table, view, 0, 100)]
    assert sizes == [15, 4, 3, 2]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"op": "xor", "conditions": []}, "and or or"),
        ({"conditions": [{"column_id": 999999, "operator": "equals", "value": 1}]}, "not in this table"),
        ({"conditions": [{"column_id": "Size", "operator": "gt", "value": "abc"}]}, "Pick a column"),
        ({"conditions": [{"column_id": "{size}", "operator": "gt", "value": "abc"}]}, "is not a number"),
        ({"conditions": [{"column_id": "{size}", "operator": "contains", "value": "1"}]}, "does not apply"),
        ({"conditions": [{"column_id": "{size}", "operator": "between", "value": [1]}]}, "two values"),
        ({"conditions": [{"operator": "search", "value": "\x00"}]}, "1 to 200|NUL"),
        ({"conditions": [{"op": "and", "conditions": [{"op": "and", "conditions": [{"conditions": []}]}]}]}, "nest"),
    ],
)
def test_bad_filters_are_clear_errors(db, owner, words_table, filters, message):
    workspace, user = owner
    size = next(c.id for c in words_table.live_columns if c.name == "Size")
    for cond in filters.get("conditions", []):
        if cond.get("column_id") == "{size}":
            cond["column_id"] = size
    with pytest.raises(ValidationFailed, match=message):
        service.create_view(workspace, user, words_table, "Bad", filters=filters)


def test_bad_sort_is_a_clear_error(db, owner, words_table):
    workspace, user = owner
    size = next(c.id for c in words_table.live_columns if c.name == "Size")
    with pytest.raises(ValidationFailed, match="asc or desc"):
        service.create_view(workspace, user, words_table, "Bad", sort=[{"column_id": size, "dir": "sideways"}])
    with pytest.raises(ValidationFailed, match="at most 5"):
        service.create_view(workspace, user, words_table, "Bad", sort=[{"column_id": size}] * 6)


def test_view_without_sort_or_filter_uses_the_default_order(db, owner, words_table):
    workspace, user = owner
    size = next(c.id for c in words_table.live_columns if c.name == "Size")
    view = service.create_view(workspace, user, words_table, "Sorted", sort=[{"column_id": size, "dir": "desc"}])
    assert _words(owner, words_table, view)[0] is None
    service.update_view(workspace, user, words_table, view, sort=[])
    assert _words(owner, words_table, view) == _all_words(db, words_table)
    exists = db.session.execute(text("SELECT to_regclass(:n)"), {"n": f"ut.o_{words_table.id}_{view.id}"}).scalar_one()
    assert exists is None, "an unused order table was left behind"


def test_multi_select_date_and_checkbox_filters(db, owner):
    workspace, user = owner
    table = service.create_table(
        workspace,
        user,
        "Typed",
        columns=[
            {"name": "Tags", "type": "multi_select", "config": {"options": ["a", "b", "c"]}},
            {"name": "Day", "type": "date"},
            {"name": "Done", "type": "checkbox"},
        ],
    )
    ids = service.insert_rows(
        workspace,
        user,
        table,
        [
            {"Tags": "a, b", "Day": "2026-01-01", "Done": True},
            {"Tags": ["c"], "Day": "2026-06-01", "Done": False},
            {"Tags": None, "Day": None, "Done": None},
            {"Tags": ["b"], "Day": "2025-12-31", "Done": "yes"},
        ],
    )
    tags, day, done = (c.id for c in table.live_columns)

    def matching(*conditions, op="and"):
        view = service.create_view(workspace, user, table, "F", filters={"op": op, "conditions": list(conditions)})
        return [r.id for r in service.read_window(workspace, user, table, view, 0, 10)]

    assert matching({"column_id": tags, "operator": "contains", "value": "b"}) == [ids[0], ids[3]]
    assert matching({"column_id": tags, "operator": "any_of", "value": ["c", "a"]}) == [ids[0], ids[1]]
    assert matching({"column_id": tags, "operator": "is_empty"}) == [ids[2]]
    assert matching({"column_id": day, "operator": "gte", "value": "2026-01-01"}) == [ids[0], ids[1]]
    assert matching({"column_id": day, "operator": "between", "value": ["2025-12-01", "2026-01-31"]}) == [
        ids[0],
        ids[3],
    ]
    assert matching({"column_id": done, "operator": "is_false"}) == [ids[1], ids[2]]
    assert matching(
        {"column_id": done, "operator": "is_true"}, {"column_id": day, "operator": "lt", "value": "2026-01-01"}, op="or"
    ) == [ids[0], ids[3]]
