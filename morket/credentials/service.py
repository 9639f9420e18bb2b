"""Provider credentials: store a workspace's own provider keys encrypted, resolve the key a run uses.

A secret enters through ``create_credential`` and leaves only through ``resolve_key``, which the
enrichment engine calls once per job or batch (never per row, never from a job payload: jobs
carry ids and resolve the key themselves). Every create, use and delete is audited; the secret
itself is never logged, audited, returned to a page or an API response.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from morket.core.audit import record_audit
from morket.core.crypto import DecryptionError, decrypt_secret, encrypt_secret, key_fingerprint
from morket.core.db import utcnow
from morket.core.errors import Conflict, Forbidden, MorketError, NotFound, ValidationFailed
from morket.core.logging import log_security_event
from morket.core.models import AuditEvent
from morket.core.roles import can
from morket.core.rotation import Move, reseal_batch
from morket.credentials.models import ProviderCredential
from morket.extensions import db

if TYPE_CHECKING:
    from morket.accounts.models import User
    from morket.workspaces.models import Workspace

# Providers a workspace may always store a key for; the registry adds any other keyed provider.
BASE_PROVIDERS: tuple[tuple[str, str], ...] = (
    ("apollo", "Apollo"),
    ("clearbit", "Clearbit"),
    ("http", "HTTP API"),
    ("hunter", "Hunter"),
)
SECRET_MIN = 8
SECRET_MAX = 500
LABEL_MAX = 120
# Only long keys show their last characters: on a short one, four characters are too much of it.
HINT_MIN_LENGTH = 12
HINT_CHARS = 4
TOUCH_INTERVAL = timedelta(minutes=1)


class CredentialUnreadable(MorketError):
    """A stored key does not decrypt with the current master key (wrong key or unfinished rotation)."""

    status = 409
    code = "credential_unreadable"


def provider_choices() -> list[tuple[str, str]]:
    """Return the (name, label) of every provider a workspace may store a key for, by name.

    The one place that decides it: the built-in list plus every provider of the registry that
    needs a key, labelled as the registry labels them.
    """
    from morket.providers import registry  # here: discovery imports every adapter module

    found = dict(BASE_PROVIDERS)
    for provider in registry.all_providers():
        if provider.requires_key or provider.name in found:
            found[provider.name] = provider.label
    return sorted(found.items())


def provider_label(name: str) -> str:
    """Return the display name of provider ``name``."""
    return dict(provider_choices()).get(name, name)


def _master_key() -> bytes:
    return current_app.config["MORKET"]["MASTER_KEY"]


def _require_manager(workspace: Workspace, actor: User | None) -> None:
    from morket.workspaces.service import get_membership

    membership = get_membership(workspace, actor) if actor is not None else None
    if membership is None:
        raise NotFound("Workspace not found.")
    if not can(membership.role, "credentials.manage"):
        raise Forbidden("Your role in this workspace does not allow this.")


def _clean_secret(secret: object) -> str:
    if not isinstance(secret, str) or not secret.strip():
        raise ValidationFailed("Enter the provider's API key.", fields={"secret": ["Enter the API key."]})
    secret = secret.strip()
    if any(ch.isspace() or not ch.isprintable() for ch in secret):
        raise ValidationFailed(
            "An API key has no spaces, line breaks or control characters; paste it again.",
            fields={"secret": ["An API key has no spaces, line breaks or control characters."]},
        )
    if len(secret) < SECRET_MIN:
        raise ValidationFailed(
            f"An API key has at least {SECRET_MIN} characters; paste the whole key.",
            fields={"secret": [f"Use at least {SECRET_MIN} characters."]},
        )
    if len(secret) > SECRET_MAX:
        raise ValidationFailed(
            f"That is too long to be an API key (at most {SECRET_MAX} characters).",
            fields={"secret": [f"Use at most {SECRET_MAX} characters."]},
        )
    return secret


def _clean_label(label: object) -> str | None:
    if label is None:
        return None
    if not isinstance(label, str):
        raise ValidationFailed("The label must be text.", fields={"label": ["Enter text."]})
    label = " ".join(label.split())
    if "\x00" in label:
        raise ValidationFailed("The label contains a NUL character.", fields={"label": ["Remove the NUL character."]})
    if len(label) > LABEL_MAX:
        raise ValidationFailed(
            f"The label is longer than {LABEL_MAX} characters.",
            fields={"label": [f"Use at most {LABEL_MAX} characters."]},
        )
    return label or None


def create_credential(
    workspace: Workspace, actor: User, provider: str, secret: str, label: str | None = None
) -> ProviderCredential:
    """Store ``secret`` as the workspace's key for ``provider``, encrypted; verify it reads back.

    A workspace keeps one key per provider: to replace a key, delete it and add the new one, so
    the audit trail shows both steps.
    """
    _require_manager(workspace, actor)
    names = dict(provider_choices())
    if provider not in names:
        raise ValidationFailed(
            f"Morket has no provider named {str(provider)[:40]!r}.",
            fields={"provider": [f"Choose one of: {', '.join(names)}."]},
        )
    secret = _clean_secret(secret)
    label = _clean_label(label)
    existing = db.session.scalar(
        select(ProviderCredential).where(
            ProviderCredential.workspace_id == workspace.id, ProviderCredential.provider == provider
        )
    )
    if existing is not None:
        raise Conflict(
            f"This workspace already has a {names[provider]} key ({existing.masked}). Delete it first to store another."
        )
    master = _master_key()
    credential = ProviderCredential(
        workspace_id=workspace.id,
        provider=provider,
        label=label,
        ciphertext=encrypt_secret(master, workspace.id, provider, secret),
        key_fingerprint=key_fingerprint(master),
        hint=secret[-HINT_CHARS:] if len(secret) >= HINT_MIN_LENGTH else "",
        created_by_id=actor.id,
    )
    try:
        with db.session.begin_nested():
            db.session.add(credential)
            db.session.flush()
    except IntegrityError:
        # Another request stored a key for this provider between our check and our insert.
        raise Conflict(
            f"This workspace already has a {names[provider]} key. Delete it first to store another."
        ) from None
    _verify_stored(credential, master, secret)
    record_audit(
        workspace,
        actor,
        "credential.created",
        provider,
        credential_id=credential.id,
        provider=provider,
        label=label or "",
        masked=credential.masked,
    )
    db.session.flush()
    return credential


def _verify_stored(credential: ProviderCredential, master: bytes, secret: str) -> None:
    """Read the ciphertext back from the database and decrypt it: refuse a key that would not come back."""
    stored = db.session.scalar(select(ProviderCredential.ciphertext).where(ProviderCredential.id == credential.id))
    try:
        ok = stored is not None and hmac.compare_digest(
            decrypt_secret(master, credential.workspace_id, credential.provider, stored).encode(), secret.encode()
        )
    except DecryptionError:
        ok = False
    if not ok:
        raise MorketError("The key could not be stored safely; nothing was saved. Try again.")


def list_credentials(workspace: Workspace) -> list[ProviderCredential]:
    """Return the workspace's stored keys (masked only), by provider."""
    return list(
        db.session.scalars(
            select(ProviderCredential)
            .where(ProviderCredential.workspace_id == workspace.id)
            .order_by(ProviderCredential.provider, ProviderCredential.id)
        )
    )


def get_credential_or_404(workspace: Workspace, credential_id: int) -> ProviderCredential:
    """Return credential ``credential_id`` of ``workspace``, or raise NotFound."""
    credential = db.session.scalar(
        select(ProviderCredential).where(
            ProviderCredential.id == credential_id, ProviderCredential.workspace_id == workspace.id
        )
    )
    if credential is None:
        raise NotFound("That credential is not in this workspace.")
    return credential


def delete_credential(workspace: Workspace, actor: User, credential_id: int) -> None:
    """Delete a stored key; runs from now on use the platform's key (and charge credits) instead."""
    _require_manager(workspace, actor)
    credential = get_credential_or_404(workspace, credential_id)
    record_audit(
        workspace,
        actor,
        "credential.deleted",
        credential.provider,
        credential_id=credential.id,
        provider=credential.provider,
        label=credential.label or "",
        masked=credential.masked,
    )
    db.session.delete(credential)
    db.session.flush()


def resolve_key(
    workspace_id: int, provider: str, *, actor_id: int | None = None, run_id: int | None = None
) -> tuple[str | None, str]:
    """Return (key, source) for a call to ``provider`` on behalf of workspace ``workspace_id``.

    ``source`` is ``own`` when the workspace stored a key, else ``platform`` with the platform's
    configured key, or ``none`` when there is neither. Each call is audited as one
    ``credential.used`` event, so call it once per job or batch, never per row.
    """
    credential = db.session.scalar(
        select(ProviderCredential).where(
            ProviderCredential.workspace_id == workspace_id, ProviderCredential.provider == provider
        )
    )
    data: dict[str, object] = {"provider": provider}
    if run_id is not None:
        data["run_id"] = run_id
    if credential is not None:
        master = _master_key()
        try:
            secret: str | None = decrypt_secret(master, workspace_id, provider, credential.ciphertext)
        except DecryptionError:
            stale = credential.key_fingerprint != key_fingerprint(master)
            log_security_event(
                "credential_unreadable",
                workspace_id=workspace_id,
                credential_id=credential.id,
                provider=provider,
                other_master_key=stale,
            )
            raise CredentialUnreadable(
                f"The stored {provider_label(provider)} key cannot be read"
                + (
                    " because it was encrypted under another master key (is a key rotation unfinished?)."
                    if stale
                    else "; delete it and add it again."
                )
            ) from None
        source = "own"
        _touch(credential)
        data.update(credential_id=credential.id, masked=credential.masked)
    else:
        secret = current_app.config["MORKET"].get(f"{provider.upper()}_API_KEY") or None
        source = "platform" if secret else "none"
    data["source"] = source
    db.session.add(
        AuditEvent(workspace_id=workspace_id, actor_id=actor_id, action="credential.used", target=provider, data=data)
    )
    db.session.flush()
    return secret, source


def _touch(credential: ProviderCredential) -> None:
    """Record when the key was last used: at most once a minute, and never waiting for a row lock.

    Jobs hold their transaction for a whole batch; a plain UPDATE would make every other job of
    the workspace using this provider wait for that commit. SKIP LOCKED lets them go on: the job
    holding the lock records the use.
    """
    now = utcnow()
    if credential.last_used_at is not None and now - credential.last_used_at < TOUCH_INTERVAL:
        return
    lockable = (
        select(ProviderCredential.id).where(ProviderCredential.id == credential.id).with_for_update(skip_locked=True)
    )
    result = db.session.execute(
        update(ProviderCredential).where(ProviderCredential.id.in_(lockable)).values(last_used_at=now),
        execution_options={"synchronize_session": False},
    )
    if result.rowcount:
        set_committed_value(credential, "last_used_at", now)


# Master key rotation ---------------------------------------------------------------------------


@dataclass
class RotationBatch:
    """What one batch of a master-key rotation did."""

    reencrypted: int = 0
    unreadable: list[int] = field(default_factory=list)
    last_id: int = 0


def rotation_status(old_master: bytes, new_master: bytes) -> dict[str, int]:
    """Count the rows still under the old key, already under the new one, and under neither."""
    old_fp, new_fp = key_fingerprint(old_master), key_fingerprint(new_master)
    counts = {"old": 0, "new": 0, "other": 0}
    for fingerprint in db.session.scalars(select(ProviderCredential.key_fingerprint)):
        counts["old" if fingerprint == old_fp else "new" if fingerprint == new_fp else "other"] += 1
    return counts


def reencrypt_batch(old_master: bytes, new_master: bytes, *, after_id: int = 0, limit: int = 200) -> RotationBatch:
    """Re-encrypt up to ``limit`` rows still under ``old_master`` (ids above ``after_id``) with ``new_master``.

    Each value is decrypted, encrypted under the new key, read back and only then given the new
    key's fingerprint; the caller commits each batch, so an interrupted rotation resumes where it
    stopped (rows already carrying the new fingerprint are never selected again).
    """

    def reseal(credential: ProviderCredential, move: Move) -> None:
        credential.ciphertext = move(credential.ciphertext, credential.provider)

    done, unreadable, last_id = reseal_batch(
        ProviderCredential, old_master, new_master, reseal, after_id=after_id, limit=limit, verify=True
    )
    return RotationBatch(reencrypted=done, unreadable=unreadable, last_id=last_id)
