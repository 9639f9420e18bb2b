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
