"""Background jobs of CSV imports; they take ids only and are safe to run twice."""

from __future__ import annotations

from morket.dataops import service


def run_import(run_id: int) -> None:
    """Load a queued import (a second run of the same job finds it no longer queued and stops)."""
    service.execute_import(run_id)
