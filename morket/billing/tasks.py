"""Billing jobs: the hourly end of grace periods (the runner commits when the job returns)."""

from __future__ import annotations

import logging

from morket.billing import service

log = logging.getLogger("morket.billing")


def end_expired_grace() -> int:
    """Move workspaces whose grace period after a failed renewal has ended to the free plan."""
    ended = service.end_expired_grace()
    if ended:
        log.info("grace periods ended", extra={"workspaces": ended})
    return len(ended)


def check_auto_topups() -> int:
    """Buy the top-up pack of every workspace whose balance fell below its threshold (once a crossing)."""
    from morket.billing import topup
    from morket.core.errors import MorketError
    from morket.extensions import db

    started = 0
    for workspace_id in topup.due_workspaces():
        try:
            found = topup.check(workspace_id)
        except MorketError:
            db.session.rollback()
            log.warning("auto top-up could not reach Stripe", extra={"workspace": workspace_id})
            continue
        if found.result in ("charged", "declined"):
            started += 1
            log.info("auto top-up", extra={"workspace": workspace_id, "result": found.result})
    return started


def check_auto_topup(workspace_id: int) -> str:
    """Buy the workspace's top-up pack now if its balance is below the threshold (queued by the
    debit that crossed it); return what the check did."""
    from morket.billing import topup

    found = topup.check(workspace_id)
    if found.result in ("charged", "declined"):
        log.info("auto top-up", extra={"workspace": workspace_id, "result": found.result})
    return found.result
