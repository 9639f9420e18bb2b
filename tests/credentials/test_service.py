"""The credentials service: encrypted storage read back from the database, masking, audit, resolve_key."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from morket.core.crypto import decrypt_secret, key_fingerprint
from morket.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from morket.core.models import AuditEvent
from morket.credentials import service
from morket.credentials.models import ProviderCredential

SECRET = "sk-test-hunter-7f3a9c1e5b2d"


def _audit(db, workspace, action: str) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.workspace_id == workspace.id, AuditEvent.action == action)
            .order_by(AuditEvent.id)
        )
    )


def _raw_row(db, credential_id: int):
    """The row as PostgreSQL holds it, read with plain SQL (not through the model)."""
    return db.session.execute(
        text("SELECT ciphertext, key_fingerprint, hint FROM provider_credentials WHERE id = :id"),
        {"id": credential_id},
    ).one()


def test_create_stores_only_ciphertext_and_shows_a_mask(app, db, team):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", f"  {SECRET}\n", label=" Sales ")
    ciphertext, fingerprint, hint = _raw_row(db, credential.id)
    assert SECRET.encode() not in bytes(ciphertext)
    master = app.config["MORKET"]["MASTER_KEY"]
    assert decrypt_secret(master, team.workspace.id, "hunter", bytes(ciphertext)) == SECRET
    assert fingerprint == key_fingerprint(master)
    assert (hint, credential.masked, credential.label) == ("5b2d", "••••5b2d", "Sales")
    [event] = _audit(db, team.workspace, "credential.created")
    assert event.actor_id == team["owner"].id and event.target == "hunter"
    assert event.data["credential_id"] == credential.id and event.data["masked"] == "••••5b2d"
    assert SECRET not in str(event.data)


def test_a_short_key_shows_no_characters(db, team):
    credential = service.create_credential(team.workspace, team["admin"], "apollo", "sandbox-k1")
    assert credential.masked == "••••" and _raw_row(db, credential.id).hint == ""


@pytest.mark.parametrize(
    ("provider", "secret", "field"),
    [
        ("hunter", "", "secret"),
        ("hunter", "   ", "secret"),
        ("hunter", "sk-1234", "secret"),
        ("hunter", "sk-test with space", "secret"),
        ("hunter", "sk-test-line\nbreak", "secret"),
        ("hunter", "sk-test-\x00nul-char", "secret"),
        ("hunter", "x" * 501, "secret"),
        ("nosuchprovider", SECRET, "provider"),
    ],
)
def test_bad_input_is_refused_with_a_field_and_nothing_is_written(db, team, provider, secret, field):
    with pytest.raises(ValidationFailed) as caught:
        service.create_credential(team.workspace, team["owner"], provider, secret)
    assert field in caught.value.fields
    assert secret.strip() == "" or secret not in caught.value.message
    assert db.session.scalar(select(func.count()).select_from(ProviderCredential)) == 0
    assert _audit(db, team.workspace, "credential.created") == []


def test_one_key_per_provider(db, team):
    service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    with pytest.raises(Conflict, match="already has a Hunter key"):
        service.create_credential(team.workspace, team["admin"], "hunter", "sk-test-another-key-0000")
    assert len(service.list_credentials(team.workspace)) == 1


@pytest.mark.parametrize("role", ["member", "viewer", "billing_admin"])
def test_only_managers_may_store_or_delete(db, team, role):
    with pytest.raises(Forbidden):
        service.create_credential(team.workspace, team[role], "hunter", SECRET)
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    with pytest.raises(Forbidden):
        service.delete_credential(team.workspace, team[role], credential.id)


def test_another_workspace_cannot_reach_the_key(db, team, stranger):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    with pytest.raises(NotFound):
        service.get_credential_or_404(stranger.workspace, credential.id)
    with pytest.raises(NotFound):
        service.delete_credential(stranger.workspace, stranger["owner"], credential.id)
    with pytest.raises(NotFound):
        service.create_credential(team.workspace, stranger["owner"], "apollo", SECRET)
    assert service.list_credentials(stranger.workspace) == []
    assert service.resolve_key(stranger.workspace.id, "hunter")[1] != "own"


def test_delete_is_audited_and_the_key_is_gone(db, team):
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET, label="Old")
    service.delete_credential(team.workspace, team["admin"], credential.id)
    assert service.list_credentials(team.workspace) == []
    [event] = _audit(db, team.workspace, "credential.deleted")
    assert event.actor_id == team["admin"].id and event.data["credential_id"] == credential.id


def test_resolve_key_prefers_the_workspace_key_and_audits_each_use(app, db, team, monkeypatch):
    monkeypatch.setitem(app.config["MORKET"], "HUNTER_API_KEY", "sk-test-platform-hunter")
    monkeypatch.setitem(app.config["MORKET"], "APOLLO_API_KEY", "")
    monkeypatch.setitem(app.config["MORKET"], "CLEARBIT_API_KEY", "sk-test-platform-clearbit")
    assert service.resolve_key(team.workspace.id, "hunter", run_id=7) == ("sk-test-platform-hunter", "platform")
    credential = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    assert credential.last_used_at is None
    assert service.resolve_key(team.workspace.id, "hunter", actor_id=team["member"].id, run_id=8) == (SECRET, "own")
    assert credential.last_used_at is not None
    assert service.resolve_key(team.workspace.id, "apollo") == (None, "none")
    assert service.resolve_key(team.workspace.id, "clearbit") == ("sk-test-platform-clearbit", "platform")
    uses = _audit(db, team.workspace, "credential.used")
    assert [(e.target, e.data["source"], e.data.get("run_id")) for e in uses] == [
        ("hunter", "platform", 7),
        ("hunter", "own", 8),
        ("apollo", "none", None),
        ("clearbit", "platform", None),
    ]
    assert uses[1].actor_id == team["member"].id and uses[1].data["credential_id"] == credential.id
    assert all(SECRET not in str(e.data) and "platform-hunter" not in str(e.data) for e in uses)


def test_a_ciphertext_moved_to_another_workspace_does_not_decrypt(db, team, stranger):
    """Associated data binds a value to its workspace: copying bytes across tenants yields an error, not a key."""
    mine = service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    theirs = service.create_credential(stranger.workspace, stranger["owner"], "hunter", "sk-test-their-own-key-99")
    db.session.execute(
        text(
            "UPDATE provider_credentials SET ciphertext = (SELECT ciphertext FROM provider_credentials WHERE id = :a) "
            "WHERE id = :b"
        ),
        {"a": mine.id, "b": theirs.id},
    )
    db.session.expire_all()
    with pytest.raises(service.CredentialUnreadable, match="delete it and add it again"):
        service.resolve_key(stranger.workspace.id, "hunter")


def test_a_key_under_another_master_key_names_the_rotation(app, db, team, monkeypatch):
    service.create_credential(team.workspace, team["owner"], "hunter", SECRET)
    monkeypatch.setitem(app.config["MORKET"], "MASTER_KEY", bytes(32))
    with pytest.raises(service.CredentialUnreadable, match="another master key"):
        service.resolve_key(team.workspace.id, "hunter")


def test_provider_choices_name_every_keyed_provider():
    names = dict(service.provider_choices())
    assert {"apollo", "hunter", "clearbit", "http"} <= set(names)
    assert list(names) == sorted(names)
    assert service.provider_label("hunter") == "Hunter"


@pytest.fixture
def committed_credential(app):
    """A workspace and its Hunter key committed by another connection (set up before ``db``, removed after it)."""
    from morket.core.crypto import encrypt_secret
    from morket.extensions import db as _db

    master = app.config["MORKET"]["MASTER_KEY"]
    with app.app_context():
        engine = _db.engine
        with engine.begin() as conn:
            workspace_id = conn.execute(
                text("INSERT INTO workspaces (slug, name) VALUES ('locked-key-co', 'Locked Key Co') RETURNING id")
            ).scalar_one()
            credential_id = conn.execute(
                text(
                    "INSERT INTO provider_credentials (workspace_id, provider, ciphertext, key_fingerprint, hint) "
                    "VALUES (:w, 'hunter', :c, :f, '') RETURNING id"
                ),
                {"w": workspace_id, "c": encrypt_secret(master, workspace_id, "hunter", SECRET), "f": "x"},
            ).scalar_one()
        try:
            yield engine, workspace_id, credential_id
        finally:
            with engine.begin() as conn:
                conn.execute(text("DELETE FROM workspaces WHERE id = :w"), {"w": workspace_id})


def test_resolve_key_does_not_wait_for_a_job_holding_the_key_row(committed_credential, db):
    """Another job's open transaction holding the row must not stall this one: the use is still audited."""
    engine, workspace_id, credential_id = committed_credential
    with engine.connect() as other_job:
        other_job.execute(text("SELECT id FROM provider_credentials WHERE id = :id FOR UPDATE"), {"id": credential_id})
        db.session.execute(text("SET LOCAL lock_timeout = '2s'"))
        assert service.resolve_key(workspace_id, "hunter", run_id=3) == (SECRET, "own")
        other_job.rollback()
    [event] = _audit(db, type("W", (), {"id": workspace_id})(), "credential.used")
    assert event.data["credential_id"] == credential_id and event.data["source"] == "own"
