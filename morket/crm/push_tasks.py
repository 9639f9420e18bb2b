"""Background jobs of CRM pushes; they take ids only and are safe to run twice."""

from __future__ import annotations

from typing import Any

from morket.crm import push_executor


def run_push(run_id: int, slot: int = 0) -> dict[str, Any]:
    """Work on a push's rows (one of ``ENRICHMENT_JOBS_PER_RUN`` slots) until none is claimable."""
    return push_executor.work(run_id, slot)


def reconcile_push() -> dict[str, int]:
    """Periodic: re-queue expired leases, resume paused pushes, restart pushes with no job."""
    return push_executor.reconcile()
