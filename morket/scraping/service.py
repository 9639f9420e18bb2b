"""Scrape requests: start one (checked before it is queued), run it in a scrape worker, read it back."""

from __future__ import annotations

from flask import current_app
from sqlalchemy import select, update

from morket.core.db import utcnow
from morket.core.errors import NotFound
from morket.core.jobs import QUEUE_SCRAPE, enqueue_after_commit, redis_connection
from morket.core.urlsafety import UnsafeUrl
from morket.extensions import db
from morket.scraping.extractors import get_extractor
from morket.scraping.models import ScrapeRequest
from morket.scraping.netguard import RequestGuard
from morket.scraping.scraper import Scraper, normalise_target

RECENT_LIMIT = 20


def _guard() -> RequestGuard:
    settings = current_app.config["MORKET"]
    return RequestGuard.from_settings(
        tuple(settings.get("SCRAPE_ALLOWLIST") or ()), settings.get("SCRAPE_HOST_RESOLVER_RULES") or ""
    )


def start_scrape(workspace, actor, target: str, extractor: str = "company", *, source: str = "page") -> ScrapeRequest:
    """Queue a scrape of ``target`` (a URL or a domain); refuse an unsafe URL before anything is written."""
    get_extractor(extractor)
    url = normalise_target(target)
    _guard().check(url)
    scrape = ScrapeRequest(
        workspace_id=workspace.id,
        created_by_id=getattr(actor, "id", None),
        source=source,
        url=url,
        extractor=extractor,
        status="queued",
    )
    db.session.add(scrape)
    db.session.flush()
    enqueue_after_commit(
        "morket.scraping.tasks.run_scrape", scrape.id, queue=QUEUE_SCRAPE, job_id=f"scrape-{scrape.id}"
    )
    return scrape


def get_scrape_or_404(workspace, scrape_id: int) -> ScrapeRequest:
    """Return the workspace's scrape ``scrape_id`` or raise NotFound (another workspace's id too)."""
    scrape = db.session.scalars(
        select(ScrapeRequest).where(ScrapeRequest.id == scrape_id, ScrapeRequest.workspace_id == workspace.id)
    ).one_or_none()
    if scrape is None:
        raise NotFound("That scrape does not exist.")
    return scrape


def list_scrapes(workspace, limit: int = RECENT_LIMIT) -> list[ScrapeRequest]:
    """The workspace's most recent scrapes, newest first."""
    return list(
        db.session.scalars(
            select(ScrapeRequest)
            .where(ScrapeRequest.workspace_id == workspace.id)
            .order_by(ScrapeRequest.id.desc())
            .limit(limit)
        )
    )


def scraper() -> Scraper:
    """A scraper on this process's browser pool with the app's settings."""
    return Scraper(current_app.config["MORKET"], redis_connection())


def claim_scrape(scrape_id: int) -> ScrapeRequest | None:
    """Mark a queued scrape running; None when it is no longer queued (a second run of the same job)."""
    claimed = db.session.execute(
        update(ScrapeRequest)
        .where(ScrapeRequest.id == scrape_id, ScrapeRequest.status == "queued")
        .values(status="running", started_at=utcnow())
        .returning(ScrapeRequest.id)
    ).first()
    return None if claimed is None else db.session.get(ScrapeRequest, scrape_id)


def read_scrape(scrape: ScrapeRequest) -> None:
    """Read a running scrape's page with this worker's browser and record what came back."""
    try:
        outcome = scraper().scrape(scrape.url, scrape.extractor, screenshot=True)
    except UnsafeUrl as exc:
        scrape.status, scrape.error_kind, scrape.message = "failed", "blocked", exc.message
    else:
        scrape.status = "done" if outcome.ok else "failed"
        scrape.result = outcome.data if outcome.ok else None
        scrape.final_url = outcome.final_url
        scrape.http_status = outcome.http_status
        scrape.error_kind = outcome.error_kind
        scrape.message = outcome.message
        scrape.attempts = outcome.attempts
        scrape.duration_ms = outcome.elapsed_ms
        scrape.screenshot = outcome.screenshot
    scrape.finished_at = utcnow()
    db.session.flush()


def scrape_answer(url: str) -> dict:
    """Scrape ``url`` for an enrichment cell: the answer as an asynchronous provider would send it."""
    outcome = scraper().scrape(url, "company")
    page = {"final_url": outcome.final_url or outcome.url}  # the page read, for the cell's detail
    if outcome.ok:
        return {"outcome": "hit", "values": outcome.data, "http_status": outcome.http_status, **page}
    if outcome.error_kind in ("timeout", "network", "crashed", "circuit_open", "rate_limited") or (
        outcome.error_kind == "http" and (outcome.http_status or 0) >= 500
    ):
        return {"outcome": "retryable", "message": outcome.message, "http_status": outcome.http_status, **page}
    if outcome.error_kind == "http" and outcome.http_status == 404:
        return {"outcome": "not_found", "message": outcome.message, "http_status": 404, **page}
    return {"outcome": "invalid_input", "message": outcome.message, "http_status": outcome.http_status, **page}
