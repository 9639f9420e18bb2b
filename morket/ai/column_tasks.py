"""Background jobs of AI columns; they take ids only and are safe to run twice."""

from __future__ import annotations

from typing import Any

from morket.ai import executor


def run_ai_column(run_id: int, slot: int = 0) -> dict[str, Any]:
    """Work on an AI column's run (one of ``ENRICHMENT_JOBS_PER_RUN`` slots) until no row is claimable."""
    return executor.work(run_id, slot)


def reconcile_ai_runs() -> dict[str, int]:
    """Periodic: re-queue expired leases, resume paused AI runs (not those stopped at a budget), restart runs."""
    return executor.reconcile()
