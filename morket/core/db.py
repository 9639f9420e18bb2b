"""Declarative base, naming convention and column mixins shared by every model."""

from __future__ import annotations

import select
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, DateTime, ForeignKey, MetaData, event, exc, func
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.pool import ConnectionPoolEntry, Pool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class IdMixin:
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), default=utcnow, nullable=False
    )


class WorkspaceScoped:
    """Every tenant-owned row carries a NOT NULL, indexed workspace_id."""

    @declared_attr
    def workspace_id(cls) -> Mapped[int]:  # noqa: N805
        return mapped_column(BigInteger, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True)


# --- pooled connections: checked without a round trip when recently used --------------------------
#
# pool_pre_ping sends SELECT 1 on every checkout: a round trip on every request, which for the grid's
# window reads was one of six. A connection back in the pool for less than PING_AFTER_IDLE_S is
# checked by looking at its socket instead: a server that ended the session (a restart, a
# terminated backend) has sent its termination notice or closed the socket, and either makes the
# socket readable. A readable socket, an older connection or a new one gets the real ping, and a
# failed ping makes the pool replace the connection (DisconnectionError), as pool_pre_ping does.
PING_AFTER_IDLE_S = 10.0
_IDLE_SINCE = "morket_idle_since"


@event.listens_for(Pool, "checkin")
def _note_idle(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info[_IDLE_SINCE] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _check_alive(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: Any) -> None:
    since = record.info.pop(_IDLE_SINCE, None)
    if since is not None and time.monotonic() - since < PING_AFTER_IDLE_S and not _has_news(dbapi_connection):
        return
    autocommit = dbapi_connection.autocommit
    try:
        dbapi_connection.autocommit = True  # the ping must not open the request's transaction
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT 1")
        finally:
            cursor.close()
        dbapi_connection.autocommit = autocommit
    except Exception as error:  # any failure means this connection is unusable
        raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _has_news(dbapi_connection: Any) -> bool:
    """Whether an idle connection's socket has something to read (the server spoke or hung up)."""
    try:
        readable, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except Exception:  # noqa: BLE001 - a closed driver connection raises its own error type
        return True
    return bool(readable)


# --- the hottest reads, on the driver's cursor ---------------------------------------------------
#
# A small read through ``exec_driver_sql`` spends more time in SQLAlchemy than in PostgreSQL: the
# execution context, then a result object whose column metadata is built from the cursor's
# description on every call. The grid's window reads skip that layer on the same pooled connection,
# in its current transaction state, while keeping what the layer gives the rest of the app:
# before/after_cursor_execute listeners see the statement (statement budgets count it), driver
# errors arrive as SQLAlchemy's DBAPIError, and a disconnect invalidates the connection.


def driver_rows(connection: Connection, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one read (``%(name)s`` parameters) on ``connection``'s driver cursor; return its rows."""
    fairy = connection.connection
    cursor = fairy.cursor()
    try:
        for fn in connection.dispatch.before_cursor_execute:
            fn(connection, cursor, sql, params, None, False)
        try:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        except connection.dialect.loaded_dbapi.Error as error:
            disconnected = connection.dialect.is_disconnect(error, fairy, cursor)
            if disconnected:
                connection.invalidate(error)
            raise exc.DBAPIError.instance(
                sql, params, error, connection.dialect.loaded_dbapi.Error, connection_invalidated=disconnected
            ) from error
        for fn in connection.dispatch.after_cursor_execute:
            fn(connection, cursor, sql, params, None, False)
        return rows
    finally:
        cursor.close()
