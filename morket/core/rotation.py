"""One batch of a master-key rotation over any table of sealed secrets.

Every store sealed with the master key (provider credentials, CRM tokens, webhook and inbound
secrets) carries a ``key_fingerprint`` column; ``flask credentials rotate-master-key`` walks each
store batch by batch with ``reseal_batch``. The store only says how one row's values move from the
old key to the new one; selection, row locks, unreadable rows and the fingerprint live here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from morket.core.crypto import DecryptionError, decrypt_secret, encrypt_secret, key_fingerprint
from morket.extensions import db

# move(blob, purpose) -> the same secret sealed under the new key (raises DecryptionError)
Move = Callable[[bytes, str], bytes]
# reencrypt(old_master, new_master, *, after_id, limit) -> (re-encrypted, unreadable ids, last id)
Resealer = Callable[..., tuple[int, list[int], int]]
# Stores that register themselves (a domain the credentials CLI may not import without a cycle).
RESEALERS: list[Resealer] = []


def register_resealer(resealer: Resealer) -> Resealer:
    """Add a store's batch re-sealer to every later master-key rotation (usable as a decorator)."""
    if resealer not in RESEALERS:
        RESEALERS.append(resealer)
    return resealer


def reseal_batch(
    model: Any,
    old_master: bytes,
    new_master: bytes,
    reseal: Callable[[Any, Move], None],
    *,
    after_id: int = 0,
    limit: int = 200,
    verify: bool = False,
) -> tuple[int, list[int], int]:
    """Re-seal up to ``limit`` rows of ``model`` still under ``old_master`` with ``new_master`` (the caller commits).

    ``reseal(row, move)`` re-seals the row's values with ``move``; it must compute every new value
    before assigning any, so a value that does not decrypt (DecryptionError) leaves the row as it
    was and lists its id as unreadable. ``verify`` reads each new value back before it counts.
    Rows are locked in id order (ids above ``after_id``), so a concurrent change to a row waits for
    the batch. Returns (re-encrypted, ids that did not decrypt, last id seen).
    """
    old_fp, new_fp = key_fingerprint(old_master), key_fingerprint(new_master)
    rows = list(
        db.session.scalars(
            select(model)
            .where(model.key_fingerprint == old_fp, model.id > after_id)
            .order_by(model.id)
            .limit(limit)
            .with_for_update()
        )
    )
    done, unreadable = 0, []
    for row in rows:

        def move(blob: bytes, purpose: str, workspace_id: int = row.workspace_id) -> bytes:
            secret = decrypt_secret(old_master, workspace_id, purpose, bytes(blob))
            sealed = encrypt_secret(new_master, workspace_id, purpose, secret)
            if verify and decrypt_secret(new_master, workspace_id, purpose, sealed) != secret:
                raise DecryptionError("the re-sealed value does not read back")
            return sealed

        try:
            reseal(row, move)
        except DecryptionError:
            unreadable.append(row.id)
            continue
        row.key_fingerprint = new_fp
        done += 1
    db.session.flush()
    return done, unreadable, rows[-1].id if rows else after_id
