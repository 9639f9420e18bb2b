"""A connection's tokens: sealed with the workspace's key, read fresh, refreshed once at a time.

Tokens are read and written through a session of their own (``_own_session``) that commits at
once: a refreshed token must be in the database before the Redis lock is released, so that every
other process waiting for that lock reads it instead of refreshing again. The caller's unit of
work is untouched (in tests that session joins the test's transaction as a savepoint).

One refresh at a time per connection, across processes: ``refresh_access`` takes the Redis lock
``morket:crm-refresh:<id>``, then re-reads the row; when ``token_version`` moved past the version
the caller saw, another process refreshed while it waited and the new token is returned as is.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy.orm import Session

from morket.core.crypto import (
    DecryptionError,
    decrypt_secret,
    encrypt_secret,
    key_fingerprint,
)
from morket.core.db import utcnow
from morket.core.errors import MorketError
from morket.core.jobs import redis_connection
from morket.core.rotation import Move, reseal_batch
from morket.crm import oauth
from morket.crm.models import CrmConnection
from morket.crm.providers import get_spec
from morket.extensions import db

LOCK_SECONDS = 30
MAX_ERROR = 500


class NotConnected(MorketError):
    """The connection is gone (disconnected) or its tokens cannot be read: connect again."""

    status = 409
    code = "crm_not_connected"


def _purpose(provider: str, kind: str) -> str:
    # Bound into the ciphertext: an access token cannot be swapped for a refresh token, nor one CRM's for another's.
    return f"crm:{provider}:{kind}"


def seal(workspace_id: int, provider: str, kind: str, value: str) -> bytes:
    """Encrypt a token of ``kind`` (access or refresh) for the workspace's connection to ``provider``."""
    return encrypt_secret(_master_key(), workspace_id, _purpose(provider, kind), value)


def unseal(workspace_id: int, provider: str, kind: str, blob: bytes) -> str:
    """Decrypt what ``seal`` wrote; NotConnected when it does not decrypt with this key."""
    try:
        return decrypt_secret(_master_key(), workspace_id, _purpose(provider, kind), blob)
    except DecryptionError:
        raise NotConnected("The stored CRM tokens cannot be read with this server's key; connect again.") from None


def _master_key() -> bytes:
    return current_app.config["MORKET"]["MASTER_KEY"]


def fingerprint() -> str:
    """The fingerprint of the master key that seals tokens now."""
    return key_fingerprint(_master_key())


@contextmanager
def _own_session() -> Iterator[Session]:
    session = Session(
        bind=db.session.get_bind(),
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
    )
    try:
        yield session
    finally:
        session.close()


@dataclass(frozen=True)
class LiveToken:
    """The access token to send now, and the version it was read at."""

    connection_id: int
    workspace_id: int
    provider: str
    access_token: str
    version: int
    expires_at: datetime | None
    instance_url: str | None

    def __repr__(self) -> str:
        return f"LiveToken(connection_id={self.connection_id}, version={self.version})"

    def expires_within(self, seconds: float) -> bool:
        return self.expires_at is not None and self.expires_at - utcnow() <= timedelta(seconds=seconds)


def _live(row: CrmConnection) -> LiveToken:
    return LiveToken(
        connection_id=row.id,
        workspace_id=row.workspace_id,
        provider=row.provider,
        access_token=unseal(row.workspace_id, row.provider, "access", row.access_ciphertext),
        version=row.token_version,
        expires_at=row.expires_at,
        instance_url=row.instance_url,
    )


def read_token(connection_id: int) -> LiveToken:
    """The connection's current access token, read from the database (not from any cache)."""
    with _own_session() as session:
        row = session.get(CrmConnection, connection_id)
        if row is None:
            raise NotConnected("This CRM is no longer connected; connect it again.")
        return _live(row)


def token_for_use(connection_id: int, settings: Mapping[str, Any]) -> LiveToken:
    """The access token to send now: refreshed first when it expires within the refresh margin."""
    token = read_token(connection_id)
    if token.expires_within(float(settings["CRM_REFRESH_MARGIN"])):
        token = refresh_access(connection_id, token.version, settings)
    return token


def refresh_access(connection_id: int, seen_version: int, settings: Mapping[str, Any]) -> LiveToken:
    """Refresh the access token unless another process already did since ``seen_version``."""
    lock = redis_connection().lock(
        f"morket:crm-refresh:{connection_id}",
        timeout=LOCK_SECONDS,
        blocking_timeout=LOCK_SECONDS,
    )
    if not lock.acquire():
        raise NotConnected("The CRM token is being refreshed by another process for too long; try again.")
    try:
        with _own_session() as session:
            row = session.get(CrmConnection, connection_id, with_for_update=True)
            if row is None:
                raise NotConnected("This CRM is no longer connected; connect it again.")
            if row.token_version != seen_version:
                live = _live(row)
                session.commit()
                return live
            spec = get_spec(row.provider)
            if row.refresh_ciphertext is None or spec is None:
                raise NotConnected(f"The {row.provider} connection has no refresh token; connect it again.")
            refresh_token = unseal(row.workspace_id, row.provider, "refresh", row.refresh_ciphertext)
            try:
                fresh = oauth.refresh(spec, settings, refresh_token)
            except oauth.CrmAuthError as exc:
                row.last_error = exc.message[:MAX_ERROR]
                row.last_error_at = utcnow()
                session.commit()
                raise
            row.access_ciphertext = seal(row.workspace_id, row.provider, "access", fresh.access_token)
            if fresh.refresh_token and fresh.refresh_token != refresh_token:
                row.refresh_ciphertext = seal(row.workspace_id, row.provider, "refresh", fresh.refresh_token)
            row.key_fingerprint = fingerprint()
            row.expires_at = fresh.expires_at
            row.token_version = row.token_version + 1
            row.last_error = None
            row.last_error_at = None
            live = LiveToken(
                row.id, row.workspace_id, row.provider, fresh.access_token, row.token_version, row.expires_at,
                row.instance_url,
            )  # fmt: skip
            session.commit()
            return live
    finally:
        lock.release()


def record_error(connection_id: int, message: str | None) -> None:
    """Remember the CRM's last error (None: healthy again) on the connection, committed at once."""
    with _own_session() as session:
        row = session.get(CrmConnection, connection_id)
        if row is not None:
            row.last_error = message[:MAX_ERROR] if message else None
            row.last_error_at = utcnow() if message else None
            session.commit()


def reencrypt_batch(
    old_master: bytes, new_master: bytes, *, after_id: int = 0, limit: int = 200
) -> tuple[int, list[int], int]:
    """Re-seal up to ``limit`` connections still under ``old_master`` with ``new_master`` (the caller commits).

    Returns (re-encrypted, ids that did not decrypt, last id seen); the master-key rotation runs it
    batch by batch after the provider credentials. Rows are locked, so a refresh waits for its row.
    """

    def reseal(row: CrmConnection, move: Move) -> None:
        access = move(row.access_ciphertext, _purpose(row.provider, "access"))
        refresh = None
        if row.refresh_ciphertext is not None:
            refresh = move(row.refresh_ciphertext, _purpose(row.provider, "refresh"))
        row.access_ciphertext = access
        row.refresh_ciphertext = refresh

    return reseal_batch(CrmConnection, old_master, new_master, reseal, after_id=after_id, limit=limit)
