"""Background jobs of enrichment runs; they take ids only and are safe to run twice."""

from __future__ import annotations

from typing import Any

from morket.enrichment import executor


def run_enrichment(run_id: int, slot: int = 0) -> dict[str, Any]:
    """Work on a run's rows (one of ``ENRICHMENT_JOBS_PER_RUN`` slots) until none is claimable."""
    return executor.work(run_id, slot)


def reconcile_enrichment() -> dict[str, int]:
    """Periodic: re-queue expired leases, time out callbacks, resume paused runs, restart idle runs."""
    return executor.reconcile()
