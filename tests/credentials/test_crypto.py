"""AES-256-GCM under per-workspace HKDF keys: round trip, binding to workspace and provider, tampering."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from morket.core.crypto import (
    DecryptionError,
    associated_data,
    decrypt_secret,
    encrypt_secret,
    key_fingerprint,
    workspace_key,
)

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(1, 33))


def test_round_trip_and_fresh_nonce():
    first = encrypt_secret(MASTER, 7, "hunter", "sk-test-abc123")
    second = encrypt_secret(MASTER, 7, "hunter", "sk-test-abc123")
    assert first != second, "a nonce was reused"
    assert b"sk-test-abc123" not in first
    assert decrypt_secret(MASTER, 7, "hunter", first) == "sk-test-abc123"
    assert decrypt_secret(MASTER, 7, "hunter", second) == "sk-test-abc123"


def test_value_is_standard_aes_gcm_under_the_workspace_key():
    """An independent AESGCM decrypt with the derived key and associated data recovers the value."""
    blob = encrypt_secret(MASTER, 42, "apollo", "secret-value-1")
    assert blob[0] == 1 and len(blob) == 1 + 12 + len("secret-value-1") + 16
    plain = AESGCM(workspace_key(MASTER, 42)).decrypt(blob[1:13], blob[13:], associated_data(42, "apollo"))
    assert plain == b"secret-value-1"


def test_each_workspace_has_its_own_key():
    assert workspace_key(MASTER, 1) != workspace_key(MASTER, 2)
    assert workspace_key(MASTER, 1) == workspace_key(MASTER, 1)
    assert workspace_key(MASTER, 1) != workspace_key(OTHER_MASTER, 1)
    assert len(workspace_key(MASTER, 1)) == 32


@pytest.mark.parametrize(
    ("master", "workspace_id", "provider"),
    [(MASTER, 8, "hunter"), (MASTER, 7, "apollo"), (OTHER_MASTER, 7, "hunter")],
    ids=["moved-to-another-workspace", "moved-to-another-provider", "other-master-key"],
)
def test_a_value_cannot_be_moved_or_read_with_another_key(master, workspace_id, provider):
    blob = encrypt_secret(MASTER, 7, "hunter", "sk-test-abc123")
    with pytest.raises(DecryptionError):
        decrypt_secret(master, workspace_id, provider, blob)


def test_tampered_or_foreign_bytes_are_refused():
    blob = bytearray(encrypt_secret(MASTER, 7, "hunter", "sk-test-abc123"))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        decrypt_secret(MASTER, 7, "hunter", bytes(blob))
    for junk in (b"", b"\x02" + os.urandom(40), b"\x01short"):
        with pytest.raises(DecryptionError):
            decrypt_secret(MASTER, 7, "hunter", junk)


def test_fingerprint_names_the_key_without_revealing_it():
    fp = key_fingerprint(MASTER)
    assert len(fp) == 16 and fp == key_fingerprint(MASTER) and fp != key_fingerprint(OTHER_MASTER)
    assert fp not in MASTER.hex()


def test_master_key_must_be_32_bytes():
    with pytest.raises(ValueError, match="32 bytes"):
        workspace_key(b"short", 1)
