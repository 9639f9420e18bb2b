"""``driver_rows``: the hot reads on the driver's cursor keep what SQLAlchemy's layer gave them."""

from __future__ import annotations

import pytest
from sqlalchemy import event, exc, text

from morket.core.db import driver_rows


def test_rows_are_those_exec_driver_sql_returns_and_listeners_see_the_statement(app, db):
    sql = "SELECT g, g * 2.5, 'x' || g, now() > now() - interval '1 day' FROM generate_series(1, %(n)s) g"
    seen: list[tuple[str, object]] = []
    after: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    def finished(conn, cursor, statement, *rest):
        after.append(statement)

    connection = db.session.connection()
    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", finished)
    try:
        got = driver_rows(connection, sql, {"n": 3})
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", finished)
    want = [tuple(r) for r in db.session.connection().exec_driver_sql(sql, {"n": 3}).all()]
    assert got == want
    assert len(got) == 3
    assert seen == [(sql, {"n": 3})]
    assert after == [sql]


def test_a_driver_error_is_sqlalchemys_error_and_the_connection_stays_usable(app):
    from morket.extensions import db

    with app.app_context(), db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        with pytest.raises(exc.ProgrammingError) as raised:
            driver_rows(connection, "SELECT * FROM no_such_table_here WHERE id = %(id)s", {"id": 1})
        assert "no_such_table_here" in str(raised.value)
        assert raised.value.connection_invalidated is False
        assert driver_rows(connection, "SELECT %(a)s::int + 1", {"a": 1}) == [(2,)]


def test_a_lost_server_connection_is_invalidated_and_the_next_checkout_works(app):
    from morket.extensions import db

    with app.app_context():
        with db.engine.connect() as connection:
            pid = driver_rows(connection, "SELECT pg_backend_pid()", {})[0][0]
            with db.engine.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                other.commit()
            with pytest.raises(exc.DBAPIError) as raised:
                driver_rows(connection, "SELECT 1", {})
            assert raised.value.connection_invalidated is True
            assert connection.invalidated
        with db.engine.connect() as fresh:
            assert driver_rows(fresh, "SELECT pg_backend_pid() <> %(pid)s", {"pid": pid}) == [(True,)]
