"""Background jobs of CSV imports; they take ids only and are safe to run twice."""

from __future__ import annotations

from typing import Any

from morket.core.db import utcnow
from morket.dataops import loading, service
from morket.dataops.models import DataRun
from morket.extensions import db


def run_import(run_id: int) -> DataRun | None:
    """Load a queued import in one transaction; record errors, a decision to make, or the result.

    A second run of the same job finds the import no longer queued and stops. The rows and the
    run's outcome commit together; a load that stops (cancelled, failed, waiting for the user's
    decision on error rows) is rolled back and only its outcome is committed.
    """
    run = db.session.get(DataRun, run_id)
    if run is None or run.status != "queued":
        return run
    started = utcnow()
    report = loading.import_report()
    outcome: dict[str, Any]
    try:
        outcome = loading.load_import(run, started, report)
    except loading.ImportStopped as stopped:
        db.session.rollback()
        outcome = stopped.outcome
    run = loading.record_import_outcome(run_id, outcome, report, started)
    db.session.commit()
    if run.is_final:
        service.upload_path(run).unlink(missing_ok=True)  # the error file stays for download
    return run
