"""Re-sealing inbound sources' secrets under a new master key (``flask credentials rotate-master-key``)."""

from __future__ import annotations

from morket.core.rotation import Move, reseal_batch
from morket.inbound.models import InboundSource
from morket.inbound.signing import _associated


def reencrypt_batch(
    old_master: bytes, new_master: bytes, *, after_id: int = 0, limit: int = 200
) -> tuple[int, list[int], int]:
    """Re-seal up to ``limit`` sources still under ``old_master`` with ``new_master`` (the caller commits).

    The secret itself does not change (senders keep theirs). Returns (re-encrypted, ids that did
    not decrypt, last id seen). Rows are locked, so a rotation of the secret waits for its row.
    """

    def reseal(source: InboundSource, move: Move) -> None:
        # sealed with the source's URL token as purpose, like the service does
        source.secret_ciphertext = move(source.secret_ciphertext, _associated(source.token))

    return reseal_batch(InboundSource, old_master, new_master, reseal, after_id=after_id, limit=limit)
