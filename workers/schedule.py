"""Periodic jobs, as data: what runs, how often, and where.

``queue=None`` runs the function inline in the scheduler process (the outbox relay must: it is
what feeds RQ). Any other queue enqueues the function there through the outbox, with a job id
per period so that a period's job exists once however many schedulers saw it.
"""

from __future__ import annotations

from dataclasses import dataclass

from morket.core.jobs import QUEUE_DEFAULT, QUEUE_IO, QUEUE_SCRAPE

DAY = 24 * 3600


@dataclass(frozen=True)
class PeriodicJob:
    """One periodic job: a unique name, its period in seconds, a function path, a queue or None."""

    name: str
    interval: int
    func: str
    queue: str | None


SCHEDULE: tuple[PeriodicJob, ...] = (
    PeriodicJob("relay-outbox", 2, "morket.core.jobs.relay_outbox", None),
    PeriodicJob("delete-expired-user-tokens", DAY, "morket.accounts.tasks.delete_expired_user_tokens", QUEUE_DEFAULT),
    PeriodicJob(
        "delete-expired-refresh-tokens",
        DAY,
        "morket.accounts.tasks.delete_expired_refresh_tokens",
        QUEUE_DEFAULT,
    ),
    PeriodicJob("delete-expired-sessions", DAY, "morket.accounts.tasks.delete_expired_sessions", QUEUE_DEFAULT),
    PeriodicJob("delete-expired-exports", 3600, "morket.dataops.exports.delete_expired_exports", QUEUE_IO),
    # Inline in the scheduler, not on a queue: it is what restarts enrichment after Redis comes back
    # (re-queues expired leases, times out callbacks, resumes paused runs, starts jobs for idle runs).
    PeriodicJob("reconcile-enrichment", 15, "morket.enrichment.tasks.reconcile_enrichment", None),
    # The same for CRM pushes (runs of kind crm_push on the same engine).
    PeriodicJob("reconcile-crm-push", 15, "morket.crm.push_tasks.reconcile_push", None),
    PeriodicJob("reconcile-ai-runs", 15, "morket.ai.column_tasks.reconcile_ai_runs", None),
    # CRM pulls whose worker died mid-pull (their lease lapsed) are queued again, from their cursor.
    PeriodicJob("reconcile-crm-pulls", 15, "morket.crm.pull.reconcile_pulls", None),
    PeriodicJob("purge-enrichment-cache", 3600, "morket.enrichment.cache.purge_expired", QUEUE_DEFAULT),
    # Probes the configured scrape proxies and takes dead ones out of rotation (nothing without proxies).
    PeriodicJob("check-scrape-proxies", 300, "morket.scraping.tasks.check_proxies", QUEUE_SCRAPE),
    # Wakes the delivery job of every webhook endpoint whose oldest waiting delivery is due (retries).
    PeriodicJob("wake-due-webhooks", 5, "morket.webhooks.tasks.wake_due_endpoints", QUEUE_IO),
    # Indexes rows the storage triggers marked for search (new tables, imports, enrichment results).
    PeriodicJob("sync-search", 2, "morket.search.tasks.sync_search", QUEUE_DEFAULT),
    # A failed renewal's grace period ends by the clock even when Stripe sends nothing more.
    PeriodicJob("end-billing-grace", 3600, "morket.billing.tasks.end_expired_grace", QUEUE_DEFAULT),
    # Buys the auto top-up pack of workspaces whose balance fell below their threshold (once a crossing).
    PeriodicJob("check-auto-topups", 60, "morket.billing.tasks.check_auto_topups", QUEUE_DEFAULT),
)
