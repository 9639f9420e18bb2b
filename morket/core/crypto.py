"""Authenticated encryption of secrets at rest: AES-256-GCM under a per-workspace key.

Each workspace gets its own 256-bit key, derived with HKDF-SHA256 from the master key and a
hash of the workspace id as salt, so one workspace's key never decrypts another's values even
if a key leaked from memory. The workspace id and the provider name are bound to every value as
associated data: a ciphertext copied to another row, workspace or provider fails to decrypt
instead of quietly becoming someone else's key.

The stored form is ``version byte || 96-bit random nonce || ciphertext and tag``. Rows also
carry the master key's fingerprint (``key_fingerprint``) so a rotation can tell which rows it
has already re-encrypted and resume after an interruption.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
_HKDF_INFO = b"morket:credentials:v1"


class DecryptionError(Exception):
    """A stored value could not be decrypted: wrong master key, wrong row, or tampered bytes."""


def _check_master(master_key: bytes) -> None:
    if not isinstance(master_key, bytes) or len(master_key) != KEY_BYTES:
        raise ValueError("the master key must be exactly 32 bytes")


def key_fingerprint(master_key: bytes) -> str:
    """Return a short, non-reversible fingerprint naming ``master_key`` (16 hex digits)."""
    _check_master(master_key)
    return hmac.new(master_key, b"morket:master-key-fingerprint", hashlib.sha256).hexdigest()[:16]


def workspace_key(master_key: bytes, workspace_id: int) -> bytes:
    """Derive the 32-byte key of one workspace from the master key (HKDF-SHA256)."""
    _check_master(master_key)
    salt = hashlib.sha256(f"morket:workspace:{int(workspace_id)}".encode()).digest()
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=_HKDF_INFO).derive(master_key)


def associated_data(workspace_id: int, provider: str) -> bytes:
    """The bytes a value is bound to: its workspace and its provider."""
    return f"morket:credential:{int(workspace_id)}:{provider}".encode()


def encrypt_secret(master_key: bytes, workspace_id: int, provider: str, plaintext: str) -> bytes:
    """Encrypt ``plaintext`` for ``provider`` in workspace ``workspace_id``; a fresh nonce every call."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(workspace_key(master_key, workspace_id)).encrypt(
        nonce, plaintext.encode("utf-8"), associated_data(workspace_id, provider)
    )
    return bytes([FORMAT_VERSION]) + nonce + sealed


def decrypt_secret(master_key: bytes, workspace_id: int, provider: str, blob: bytes) -> str:
    """Decrypt a value written by ``encrypt_secret``; raise DecryptionError if anything does not match."""
    blob = bytes(blob)
    if len(blob) < 1 + NONCE_BYTES + 16 or blob[0] != FORMAT_VERSION:
        raise DecryptionError("the stored value is not in a format Morket wrote")
    nonce, sealed = blob[1 : 1 + NONCE_BYTES], blob[1 + NONCE_BYTES :]
    try:
        plain = AESGCM(workspace_key(master_key, workspace_id)).decrypt(
            nonce, sealed, associated_data(workspace_id, provider)
        )
    except InvalidTag:
        raise DecryptionError("the value does not decrypt with this key, workspace and provider") from None
    return plain.decode("utf-8")
