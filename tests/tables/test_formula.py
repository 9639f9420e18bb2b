"""Formulas: parse errors with positions, PostgreSQL results equal an independent evaluator, per-cell errors."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql

from morket.core.errors import ValidationFailed
from morket.tables import column_service, formula, formula_rows, service, storage

# --- an independent reference evaluator over Python values --------------------------------------

ROW = {"A": Decimal("12.5"), "B": Decimal("0"), "C": None, "Name": "  Ada Lovelace ", "Empty": None}


def ev(node):  # one arm per node kind
    """Return (value, error) the way the compiled SQL should."""
    if isinstance(node, formula.Num):
        return node.value, None
    if isinstance(node, formula.Str):
        return node.value, None
    if isinstance(node, formula.Bool):
        return node.value, None
    if isinstance(node, formula.Ref):
        return ROW[node.name], None
    if isinstance(node, formula.Unary):
        value, error = ev(node.operand)
        if node.op == "-":
            return (None if value is None else -value), error
        return (None if value is None else not value), error
    if isinstance(node, formula.Binary):
        (a, ea), (b, eb) = ev(node.left), ev(node.right)
        first = ea or eb
        if node.op == "AND":
            if a is False or b is False:
                return False, first
            return (None if a is None or b is None else True), first
        if node.op == "OR":
            if a is True or b is True:
                return True, first
            return (None if a is None or b is None else False), first
        if node.op == "&":
            return (a or "") + (b or ""), first
        if node.op == "/":
            if first:
                return None, first
            if b == 0:
                return None, "Division by zero"
            return (None if a is None or b is None else a / b), None
        if a is None or b is None:
            return None, first
        ops = {
            "+": lambda: a + b,
            "-": lambda: a - b,
            "*": lambda: a * b,
            "=": lambda: a == b,
            "<>": lambda: a != b,
            "<": lambda: a < b,
            ">": lambda: a > b,
            "<=": lambda: a <= b,
            ">=": lambda: a >= b,
        }
        return ops[node.op](), first
    args = [ev(a) for a in node.args]
    first = next((e for _, e in args if e), None)
    values = [v for v, _ in args]
    name = node.name
    if name == "IF":
        cond, ce = args[0]
        if ce:
            return None, ce
        chosen = args[1] if cond else (args[2] if len(args) == 3 else (None, None))
        return chosen
    if name == "NOT":
        return (None if values[0] is None else not values[0]), first
    if name in ("AND", "OR"):
        node = formula.Binary(name, *node.args)
        return ev(node)
    if name == "CONCAT":
        return "".join(v or "" for v in values), first
    if name == "ISBLANK":
        return (values[0] is None or values[0] == ""), first
    if name in ("MIN", "MAX"):
        present = [v for v in values if v is not None]
        return ((min if name == "MIN" else max)(present) if present else None), first
    if values[0] is None:
        return None, first
    if name == "LOWER":
        return values[0].lower(), first
    if name == "UPPER":
        return values[0].upper(), first
    if name == "TRIM":
        return values[0].strip(" "), first
    if name == "LEN":
        return Decimal(len(values[0])), first
    if name in ("LEFT", "RIGHT"):
        if values[1] is None:
            return None, first
        n = max(0, int(values[1].to_integral_value("ROUND_HALF_UP")))
        return (values[0][:n] if name == "LEFT" else (values[0][-n:] if n else "")), first
    if name == "ABS":
        return abs(values[0]), first
    if name == "ROUND":
        digits = 0 if len(values) == 1 else int(values[1])
        return values[0].quantize(Decimal(1).scaleb(-digits), rounding="ROUND_HALF_UP"), first
    raise AssertionError(name)


# --- random ASTs, rendered to formula text --------------------------------------------------------

small = st.integers(-50, 50).map(str) | st.sampled_from(["0.5", "2.25", "100", "0"])
safe_text = st.text(alphabet="abcdefghXYZ 019,.-", max_size=8)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '""') + '"'


numbers = st.recursive(
    small.map(lambda s: f"({s})") | st.sampled_from(["{A}", "{B}", "{C}"]),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"ABS({x})"),
        inner.map(lambda x: f"ROUND({x}, 2)"),
        st.tuples(inner, inner).map(lambda t: f"MIN({t[0]}, {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"MAX({t[0]}, {t[1]})"),
        inner.map(lambda x: f"-{x}"),
    ),
    max_leaves=8,
)
texts = st.recursive(
    safe_text.map(_quote) | st.sampled_from(["{Name}", "{Empty}"]),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: f"CONCAT({t[0]}, {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} & {t[1]})"),
        inner.map(lambda x: f"UPPER({x})"),
        inner.map(lambda x: f"LOWER({x})"),
        inner.map(lambda x: f"TRIM({x})"),
        st.tuples(inner, st.integers(0, 6)).map(lambda t: f"LEFT({t[0]}, {t[1]})"),
        st.tuples(inner, st.integers(0, 6)).map(lambda t: f"RIGHT({t[0]}, {t[1]})"),
    ),
    max_leaves=6,
)
conditions = st.one_of(
    st.tuples(numbers, st.sampled_from(["=", "<>", "<", ">", "<=", ">="]), numbers).map(" ".join),
    st.tuples(texts, st.sampled_from(["=", "<>"]), texts).map(" ".join),
    texts.map(lambda x: f"ISBLANK({x})"),
)
expressions = st.one_of(
    numbers,
    texts,
    conditions,
    st.tuples(conditions, numbers, numbers).map(lambda t: f"IF({t[0]}, {t[1]}, {t[2]})"),
    st.tuples(conditions, conditions).map(lambda t: f"AND({t[0]}, NOT({t[1]}))"),
    st.tuples(conditions, conditions).map(lambda t: f"({t[0]}) OR ({t[1]})"),
    numbers.map(lambda x: f'LEN(CONCAT({{Name}}, "x")) + {x}'),
)


@pytest.fixture
def sample(db, owner):
    workspace, user = owner
    table = service.create_table(
        workspace,
        user,
        "Sample",
        columns=[
            {"name": "A", "type": "number"},
            {"name": "B", "type": "number"},
            {"name": "C", "type": "number"},
            {"name": "Name", "type": "text"},
            {"name": "Empty", "type": "text"},
        ],
    )
    (row_id,) = service.insert_rows(workspace, user, table, [{"A": "12.5", "B": "0", "Name": "  Ada Lovelace "}])
    return table, row_id


def _evaluate_in_postgres(db, table, row_id, expression):
    store = storage.storage_for(table)
    sources, formulas = formula_rows.formula_sources(table, store)
    compiled = formula.compile_formula(expression, sources, formulas)
    statement = sa.select(compiled.value, compiled.error).where(store.rows.c.id == row_id)
    return compiled, statement, db.session.execute(statement).one()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(expression=expressions)
def test_random_formulas_match_an_independent_evaluator(db, sample, expression):
    table, row_id = sample
    expected, expected_error = ev(formula.parse(expression))
    _, _, (value, error) = _evaluate_in_postgres(db, table, row_id, expression)
    assert error == expected_error, expression
    if expected_error:
        assert value is None
    elif expected is None:
        assert value is None, expression
    elif isinstance(expected, bool):
        assert value == ("true" if expected else "false"), expression
    elif isinstance(expected, Decimal):
        got = Decimal(value)
        assert abs(got - expected) <= Decimal("1e-9") * max(1, abs(expected)), (expression, got, expected)
    else:
        assert value == expected, expression


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hostile=st.text(min_size=1, max_size=40).filter(
        lambda s: "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
    )
)
def test_hostile_text_reaches_postgres_only_as_a_parameter(db, sample, hostile):
    table, row_id = sample
    marker = f"'); DROP TABLE users; --{hostile}"
    compiled, statement, (value, error) = _evaluate_in_postgres(
        db, table, row_id, f"CONCAT({_quote(marker)}, {{Name}})"
    )
    sql = str(statement.compile(dialect=postgresql.dialect()))
    assert marker not in sql
    assert "DROP TABLE" not in sql
    assert value == marker + "  Ada Lovelace " and error is None


@pytest.mark.parametrize(
    ("expression", "position", "words"),
    [
        ("{A} +", 5, "ends too early"),
        ("{A} * (2", 8, "Expected “)”"),
        ('CONCAT("open', 7, "no closing quote"),
        ("FOO({A})", 0, "Unknown function FOO"),
        ("{Nope} + 1", 0, "No column named “Nope”"),
        ("{A} $ 2", 4, "Unexpected character"),
        ("IF({A})", 0, "IF takes 2 to 3 arguments"),
        ("{Name} * 2 + YEAR({A})", 13, "YEAR needs a date"),
        ("1 < 2 < 3", 6, "Chain comparisons"),
        ("", 0, "empty"),
    ],
)
def test_parse_and_type_errors_name_the_position(db, sample, expression, position, words):
    table, _ = sample
    with pytest.raises(ValidationFailed) as caught:
        formula_rows.check_formula(table, expression)
    assert words in caught.value.message
    assert f"at character {position + 1}" in caught.value.message


def test_python_is_never_evaluated(db, sample):
    table, _ = sample
    for attack in ("__import__('os').system('x')", "{A}.__class__", "exec(1)", "lambda: 1"):
        with pytest.raises(ValidationFailed):
            formula_rows.check_formula(table, attack)


def test_per_cell_errors_do_not_fail_the_column(db, owner, run_jobs):
    workspace, user = owner
    table = service.create_table(
        workspace, user, "Deals", columns=[{"name": "Revenue", "type": "number"}, {"name": "Seats", "type": "text"}]
    )
    ids = service.insert_rows(
        workspace,
        user,
        table,
        [{"Revenue": "100", "Seats": "4"}, {"Revenue": "50", "Seats": "0"}, {"Revenue": "9", "Seats": "many"}],
    )
    column, job = column_service.add_table_column(
        workspace, user, table, "Per seat", "formula", config={"expression": "{Revenue} / {Seats}"}
    )
    assert job is not None and job.kind == "formula"
    run_jobs()
    db.session.expire_all()
    cells = {
        r.id: (r.values(table)[column.id], (r.cell_state or {}).get(str(column.id))) for r in _rows(workspace, table)
    }
    assert cells[ids[0]] == ("25", None)
    assert cells[ids[1]][0] is None and cells[ids[1]][1]["message"] == "Division by zero"
    assert cells[ids[2]][0] is None and cells[ids[2]][1]["message"] == "/: not a number"
    done = column_service.get_job_or_404(workspace, table, job.id)
    assert done.state == "done" and done.failed_count == 2
    assert [s["row"] for s in done.sample] == [2, 3]


def _rows(workspace, table):
    return service.read_window(workspace, None, table, None, 0, 100)


def test_saving_an_input_cell_recomputes_that_row(db, owner, run_jobs):
    workspace, user = owner
    table = service.create_table(
        workspace, user, "People", columns=[{"name": "First", "type": "text"}, {"name": "Last", "type": "text"}]
    )
    first, second = service.insert_rows(
        workspace, user, table, [{"First": "Ada", "Last": "Lovelace"}, {"First": "Alan", "Last": "Turing"}]
    )
    column, _ = column_service.add_table_column(
        workspace, user, table, "Full", "formula", config={"expression": 'UPPER(CONCAT({First}, " ", {Last}))'}
    )
    run_jobs()
    service.update_cell(workspace, user, table, first, table.live_columns[0].id, "Grace")
    assert formula_rows.refresh_formula_rows(workspace, table, [first], {table.live_columns[0].id}) == 1
    assert formula_rows.refresh_formula_rows(workspace, table, [first], {column.id}) == 0
    row = service.get_row(workspace, user, table, first)
    assert row.values(table)[column.id] == "GRACE LOVELACE"
    assert service.get_row(workspace, user, table, second).values(table)[column.id] == "ALAN TURING"


def test_cycles_between_formulas_are_refused(db, owner, run_jobs):
    workspace, user = owner
    table = service.create_table(workspace, user, "Loop", columns=[{"name": "N", "type": "number"}])
    a, _ = column_service.add_table_column(
        workspace, user, table, "Double", "formula", config={"expression": "{N} * 2"}
    )
    b, _ = column_service.add_table_column(
        workspace, user, table, "Quad", "formula", config={"expression": "{Double} * 2"}
    )
    with pytest.raises(ValidationFailed, match="loop"):
        column_service.set_formula(workspace, user, table, a.id, "{Quad} + 1")
    with pytest.raises(ValidationFailed, match="loop"):
        column_service.set_formula(workspace, user, table, a.id, "{Double} + 1")
    service.insert_rows(workspace, user, table, [{"N": "3"}])
    run_jobs()
    formula_rows.recompute_formulas(workspace, table, lo=0, hi=10**12)
    row = service.read_window(workspace, user, table, None, 0, 1)[0].values(table)
    assert (row[a.id], row[b.id]) == ("6", "12")


def test_dates_checkboxes_and_blanks(db, owner):
    workspace, user = owner
    table = service.create_table(
        workspace,
        user,
        "Dated",
        columns=[
            {"name": "Signed", "type": "date"},
            {"name": "Seen", "type": "datetime"},
            {"name": "Won", "type": "checkbox"},
            {"name": "Tags", "type": "multi_select", "config": {"options": ["vip", "eu"]}},
        ],
    )
    service.insert_rows(
        workspace,
        user,
        table,
        [{"Signed": "2024-02-29", "Seen": "2025-12-31T23:30:00-02:00", "Won": "yes", "Tags": "vip, eu"}, {}],
    )
    cases = {
        "YEAR({Signed}) * 100 + MONTH({Signed})": ["202402", None],
        "DAY({Seen})": ["1", None],
        'IF({Won}, "won", "open")': ["won", "open"],
        "ISBLANK({Signed})": ["false", "true"],
        '{Tags} & "!"': ["vip, eu!", "!"],
        "YEAR(TODAY()) >= 2026": ["true", "true"],
        "TODAY() > {Signed}": ["true", None],
        'IF(ISBLANK({Signed}), 0, "dated")': ["dated", "0"],
    }
    for expression, expected in cases.items():
        store = service.storage.storage_for(table)
        sources, formulas = formula_rows.formula_sources(table, store)
        compiled = formula.compile_formula(expression, sources, formulas)
        query = sa.select(compiled.value).select_from(store.rows).order_by(store.rows.c.pos)
        got = db.session.execute(query).scalars().all()
        assert got == expected, expression


def test_a_view_sorted_on_a_formula_follows_recomputed_values(db, owner, run_jobs):
    workspace, user = owner
    table = service.create_table(workspace, user, "Ranked", columns=[{"name": "Name", "type": "text"}])
    ids = service.insert_rows(workspace, user, table, [{"Name": "bb"}, {"Name": "a"}, {"Name": "ccc"}])
    column, _ = column_service.add_table_column(
        workspace, user, table, "Length", "formula", config={"expression": 'LEFT("000", 3 - LEN({Name})) & LEN({Name})'}
    )
    run_jobs()
    view = service.create_view(workspace, user, table, "By length", sort=[{"column_id": column.id, "dir": "asc"}])
    order = [r.id for r in service.read_window(workspace, user, table, view, 0, 10)]
    assert order == [ids[1], ids[0], ids[2]]
    service.update_cell(workspace, user, table, ids[2], table.live_columns[0].id, "z")
    order = [r.id for r in service.read_window(workspace, user, table, view, 0, 10)]
    assert order[0] in (ids[1], ids[2]) and order[-1] == ids[0]


def test_fill_clear_and_undo_from_the_grid_recompute_formulas(db, owner, run_jobs):
    from morket.tables import editing
    from morket.tables.undo import undo_last

    workspace, user = owner
    table = service.create_table(workspace, user, "Deals", columns=[{"name": "Amount", "type": "number"}])
    top, below = service.insert_rows(workspace, user, table, [{"Amount": "10"}, {"Amount": "3"}])
    doubled, _ = column_service.add_table_column(
        workspace, user, table, "Doubled", "formula", config={"expression": "{Amount} * 2"}
    )
    run_jobs()
    amount = table.live_columns[0].id

    def doubled_of(row_id):
        return service.get_row(workspace, user, table, row_id).values(table)[doubled.id]

    editing.fill_down(workspace, user, table, None, [top, below], [amount])
    assert doubled_of(below) == "20"
    editing.clear_cells(workspace, user, table, None, [top], [amount])
    assert doubled_of(top) in (None, "")
    undo_last(workspace, user, table)
    assert doubled_of(top) == "20"
    added = editing.add_rows(workspace, user, table, 1)
    assert doubled_of(added[0]) in (None, "")
