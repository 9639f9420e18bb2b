"""Background jobs of scraping, on the scrape queue; they take ids only and are safe to run twice."""

from __future__ import annotations

from morket.extensions import db
from morket.runs import callbacks
from morket.scraping import service


def run_scrape(scrape_id: int) -> None:
    """Read a queued scrape request with this worker's browser (the claim commits before the read)."""
    scrape = service.claim_scrape(scrape_id)
    db.session.commit()
    if scrape is None:
        return
    service.read_scrape(scrape)
    db.session.commit()


def scrape_for_enrichment(callback_id: str, url: str) -> None:
    """Read ``url`` for the website enrichment provider and file the answer on its callback id.

    The run row already waits under ``callback_id`` (the engine records it before the call), so
    the answer is filed at once, through the same path as any provider's callback.
    """
    callbacks.complete_callback("website", callback_id, service.scrape_answer(url))
    db.session.commit()


def check_proxies() -> dict[str, bool]:
    """Probe every configured proxy and take the dead ones out of rotation (a periodic job)."""
    from flask import current_app

    from morket.core.jobs import redis_connection
    from morket.scraping.politeness import ProxyPicker

    proxies = tuple(current_app.config["MORKET"].get("SCRAPE_PROXIES") or ())
    return ProxyPicker(redis_connection(), proxies).health_check()
