"""``flask credentials rotate-master-key``: re-encrypt every stored secret under a new master key.

Provider keys, CRM tokens, webhook endpoints' signing secrets and inbound sources' secrets.

The current key is the running configuration's ``MORKET_MASTER_KEY``; the new one comes from
``MORKET_NEW_MASTER_KEY`` or a hidden prompt, never from the command line (argv is visible to
every user of the machine and lands in shell history). Each batch is committed on its own and
every row records which master key encrypted it, so a rotation that stops halfway resumes
where it stopped when run again with the same two keys. Afterwards, set ``MORKET_MASTER_KEY``
to the new key and restart the web and worker processes.
"""

from __future__ import annotations

import os

import click
from flask import current_app
from flask.cli import AppGroup

from morket.config import parse_master_key
from morket.core.audit import record_audit
from morket.core.crypto import key_fingerprint
from morket.credentials import service
from morket.extensions import db

credentials_cli = AppGroup("credentials", help="Provider credentials stored by workspaces.")


def _new_key() -> bytes:
    raw = os.environ.get("MORKET_NEW_MASTER_KEY", "").strip()
    if not raw:
        raw = click.prompt(
            "New master key (32 bytes as 64 hex digits or base64)", hide_input=True, confirmation_prompt=True
        )
    try:
        key = parse_master_key(raw)
    except ValueError as exc:
        raise click.ClickException(f"the new master key is invalid: {exc}") from None
    if key is None:
        raise click.ClickException("the new master key is empty")
    return key


@credentials_cli.command("rotate-master-key")
@click.option("--batch-size", default=200, show_default=True, type=click.IntRange(1, 10_000))
def rotate_master_key(batch_size: int) -> None:
    """Re-encrypt every stored secret (provider keys, CRM tokens, webhook and inbound secrets) under the new key."""
    old = current_app.config["MORKET"]["MASTER_KEY"]
    new = _new_key()
    if new == old:
        raise click.ClickException("the new master key is the current one; nothing to do")
    before = service.rotation_status(old, new)
    click.echo(
        f"current key {key_fingerprint(old)}, new key {key_fingerprint(new)}: "
        f"{before['old']} to re-encrypt, {before['new']} already done, {before['other']} under another key"
    )
    done, unreadable, after_id = 0, [], 0
    while True:
        batch = service.reencrypt_batch(old, new, after_id=after_id, limit=batch_size)
        db.session.commit()
        done += batch.reencrypted
        unreadable.extend(batch.unreadable)
        if batch.last_id == after_id:
            break
        after_id = batch.last_id
        click.echo(f"  {done} re-encrypted")
    # CRM connections' tokens, webhook endpoints' signing secrets, inbound sources' secrets and the
    # stores registered in core.rotation (model endpoints' keys) are sealed with the same master
    # key; each store re-seals itself, batch by batch.
    from morket.core.rotation import RESEALERS
    from morket.crm import tokens as crm_tokens
    from morket.inbound import rotation as inbound_rotation
    from morket.webhooks import service as webhooks

    for reencrypt in (
        crm_tokens.reencrypt_batch,
        webhooks.reencrypt_batch,
        inbound_rotation.reencrypt_batch,
        *RESEALERS,
    ):
        after_id = 0
        while True:
            sealed, failed, last_id = reencrypt(old, new, after_id=after_id, limit=batch_size)
            db.session.commit()
            done += sealed
            unreadable.extend(failed)
            if last_id == after_id:
                break
            after_id = last_id
    record_audit(
        None,
        None,
        "credentials.master_key_rotated",
        key_fingerprint(new),
        old_key=key_fingerprint(old),
        reencrypted=done,
        unreadable=len(unreadable),
    )
    db.session.commit()
    after = service.rotation_status(old, new)
    click.echo(f"re-encrypted {done}; {after['new']} stored keys are now under key {key_fingerprint(new)}")
    if unreadable or after["old"] or after["other"]:
        raise click.ClickException(
            f"{len(unreadable)} keys did not decrypt (ids {unreadable[:20]}), {after['old']} still under the "
            f"current key and {after['other']} under another key; fix them before switching MORKET_MASTER_KEY"
        )
    click.echo("Now set MORKET_MASTER_KEY to the new key and restart the web and worker processes.")
