"""Re-sealing inbound sources' secrets under a new master key (``flask credentials rotate-master-key``)."""

from __future__ import annotations

from sqlalchemy import select

from morket.core.crypto import DecryptionError, decrypt_secret, encrypt_secret, key_fingerprint
from morket.extensions import db
from morket.inbound.models import InboundSource
from morket.inbound.service import _associated


def reencrypt_batch(
    old_master: bytes, new_master: bytes, *, after_id: int = 0, limit: int = 200
) -> tuple[int, list[int], int]:
    """Re-seal up to ``limit`` sources still under ``old_master`` with ``new_master`` (the caller commits).

    The secret itself does not change (senders keep theirs). Returns (re-encrypted, ids that did
    not decrypt, last id seen). Rows are locked, so a rotation of the secret waits for its row.
    """
    old_fp, new_fp = key_fingerprint(old_master), key_fingerprint(new_master)
    rows = list(
        db.session.scalars(
            select(InboundSource)
            .where(InboundSource.key_fingerprint == old_fp, InboundSource.id > after_id)
            .order_by(InboundSource.id)
            .limit(limit)
            .with_for_update()
        )
    )
    done, unreadable = 0, []
    for source in rows:
        purpose = _associated(source.token)  # what the service seals with (the source's URL token)
        try:
            secret = decrypt_secret(old_master, source.workspace_id, purpose, bytes(source.secret_ciphertext))
        except DecryptionError:
            unreadable.append(source.id)
            continue
        source.secret_ciphertext = encrypt_secret(new_master, source.workspace_id, purpose, secret)
        source.key_fingerprint = new_fp
        done += 1
    db.session.flush()
    return done, unreadable, rows[-1].id if rows else after_id
