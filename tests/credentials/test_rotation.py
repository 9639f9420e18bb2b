"""``flask credentials rotate-master-key``: re-encrypt every key, resume after an interruption, never echo keys."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from morket.core.crypto import decrypt_secret, key_fingerprint
from morket.core.models import AuditEvent
from morket.credentials import service
from morket.credentials.models import ProviderCredential

NEW_MASTER = bytes(range(100, 132))
SECRETS = {"hunter": "sk-test-rotate-hunter-1111", "apollo": "sk-test-rotate-apollo-2222"}


@pytest.fixture
def stored(db, team, stranger):
    """Keys in two workspaces under the current master key."""
    service.create_credential(team.workspace, team["owner"], "hunter", SECRETS["hunter"])
    service.create_credential(team.workspace, team["owner"], "apollo", SECRETS["apollo"])
    service.create_credential(stranger.workspace, stranger["owner"], "hunter", "sk-test-stranger-hunter-3333")
    db.session.flush()
    return team, stranger


def _rotate(app, *, env_key: str | None = NEW_MASTER.hex(), prompt: str | None = None, batch: int = 200):
    env = {"MORKET_NEW_MASTER_KEY": env_key} if env_key is not None else {}
    return app.test_cli_runner().invoke(
        args=["credentials", "rotate-master-key", "--batch-size", str(batch)], env=env, input=prompt
    )


def _fingerprints(db) -> list[str]:
    db.session.expire_all()
    return list(db.session.scalars(select(ProviderCredential.key_fingerprint).order_by(ProviderCredential.id)))


def _assert_all_under_new_key(db) -> None:
    db.session.expire_all()
    for credential in db.session.scalars(select(ProviderCredential)):
        assert credential.key_fingerprint == key_fingerprint(NEW_MASTER)
        decrypt_secret(NEW_MASTER, credential.workspace_id, credential.provider, credential.ciphertext)


def test_rotation_reencrypts_every_key_and_runs_use_the_new_master(app, db, stored, monkeypatch):
    team, _ = stored
    old = app.config["MORKET"]["MASTER_KEY"]
    result = _rotate(app, batch=2)
    assert result.exit_code == 0, result.output
    assert "3 to re-encrypt, 0 already done" in result.output and "re-encrypted 3" in result.output
    assert NEW_MASTER.hex() not in result.output and old.hex() not in result.output
    assert all(secret not in result.output for secret in SECRETS.values())
    _assert_all_under_new_key(db)
    # Until MORKET_MASTER_KEY is switched the old key cannot read them; after the switch runs work.
    with pytest.raises(service.CredentialUnreadable, match="another master key"):
        service.resolve_key(team.workspace.id, "hunter")
    monkeypatch.setitem(app.config["MORKET"], "MASTER_KEY", NEW_MASTER)
    assert service.resolve_key(team.workspace.id, "hunter") == (SECRETS["hunter"], "own")
    assert service.resolve_key(team.workspace.id, "apollo") == (SECRETS["apollo"], "own")
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "credentials.master_key_rotated"))
    assert event.workspace_id is None
    assert event.data == {"old_key": key_fingerprint(old), "reencrypted": 3, "unreadable": 0}


def test_an_interrupted_rotation_resumes_where_it_stopped(app, db, stored):
    old = app.config["MORKET"]["MASTER_KEY"]
    first = service.reencrypt_batch(old, NEW_MASTER, limit=1)
    db.session.flush()
    assert first.reencrypted == 1
    assert _fingerprints(db) == [key_fingerprint(NEW_MASTER), key_fingerprint(old), key_fingerprint(old)]
    result = _rotate(app)
    assert result.exit_code == 0, result.output
    assert "2 to re-encrypt, 1 already done" in result.output
    _assert_all_under_new_key(db)
    again = _rotate(app)
    assert again.exit_code == 0 and "0 to re-encrypt, 3 already done" in again.output


def test_the_new_key_can_be_typed_at_a_hidden_prompt(app, db, stored, monkeypatch):
    monkeypatch.delenv("MORKET_NEW_MASTER_KEY", raising=False)
    result = _rotate(app, env_key=None, prompt=f"{NEW_MASTER.hex()}\n{NEW_MASTER.hex()}\n")
    assert result.exit_code == 0, result.output
    assert NEW_MASTER.hex() not in result.output
    _assert_all_under_new_key(db)


@pytest.mark.parametrize(
    ("key", "message"),
    [("abc", "the new master key is invalid"), ("00" * 31, "exactly 32 bytes"), (None, "the current one")],
)
def test_a_bad_or_unchanged_new_key_changes_nothing(app, db, stored, key, message):
    old = app.config["MORKET"]["MASTER_KEY"]
    result = _rotate(app, env_key=key if key is not None else old.hex())
    assert result.exit_code != 0 and message in result.output
    assert set(_fingerprints(db)) == {key_fingerprint(old)}


def test_a_key_that_does_not_decrypt_is_reported_and_the_rest_rotate(app, db, stored):
    team, _ = stored
    broken = db.session.scalar(
        select(ProviderCredential.id).where(
            ProviderCredential.workspace_id == team.workspace.id, ProviderCredential.provider == "apollo"
        )
    )
    db.session.execute(
        text("UPDATE provider_credentials SET ciphertext = :junk WHERE id = :id"),
        {"junk": b"\x01" + bytes(40), "id": broken},
    )
    result = _rotate(app)
    assert result.exit_code == 1
    assert f"1 keys did not decrypt (ids [{broken}])" in result.output
    fingerprints = dict(db.session.execute(select(ProviderCredential.id, ProviderCredential.key_fingerprint)).all())
    assert fingerprints.pop(broken) == key_fingerprint(app.config["MORKET"]["MASTER_KEY"])
    assert set(fingerprints.values()) == {key_fingerprint(NEW_MASTER)}
