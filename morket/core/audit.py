"""The audit trail: one helper that every service calls after a change."""

from __future__ import annotations

from typing import Any

from morket.core.logging import redact
from morket.core.models import AuditEvent
from morket.extensions import db


def record_audit(workspace: Any, actor: Any, action: str, target: str = "", **data: Any) -> AuditEvent:
    """Add an AuditEvent for ``actor`` doing ``action`` to ``target`` in ``workspace`` (None: platform)."""
    event = AuditEvent(
        workspace_id=workspace.id if workspace is not None else None,
        actor_id=actor.id if actor is not None else None,
        action=action,
        target=str(target)[:200],
        data=redact(data),
    )
    db.session.add(event)
    return event
