"""Scrapes over the JSON API: start one, poll it, read its result; another workspace's ids answer 404."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for
from pydantic import Field

from morket.api.routing import Principal, api_route
from morket.api.schemas import Out, Request
from morket.core.errors import Conflict
from morket.extensions import db
from morket.scraping import service
from morket.scraping.extractors import all_extractors
from morket.scraping.models import ScrapeRequest

TAG = "Scraping"


class ScrapeStart(Request):
    """A URL (or a bare domain) and the extractor to read it with."""

    url: str = Field(min_length=1, max_length=2000, examples=["https://acme.com"])
    extractor: str = Field(default="company", max_length=40, description="company, generic or team.")


class ScrapeOut(Out):
    """A scrape: queued, running, done (with ``result``) or failed (with ``error_kind`` and ``message``)."""

    id: int
    url: str
    extractor: str
    status: str
    status_url: str
    final_url: str | None
    http_status: int | None
    error_kind: str | None
    message: str | None
    attempts: int
    duration_ms: int | None
    result: dict[str, Any] | None
    created_at: datetime
    finished_at: datetime | None


class ScrapeResultOut(Out):
    """A finished scrape's extracted fields (their names depend on the extractor; see /extractors)."""

    id: int
    url: str
    final_url: str | None
    extractor: str
    result: dict[str, Any]


class ExtractorOut(Out):
    """One extractor and the fields it delivers."""

    name: str
    label: str
    description: str
    fields: list[str]


def _out(scrape: ScrapeRequest) -> ScrapeOut:
    return ScrapeOut(
        id=scrape.id,
        url=scrape.url,
        extractor=scrape.extractor,
        status=scrape.status,
        status_url=url_for("api.get_scrape", scrape_id=scrape.id),
        final_url=scrape.final_url,
        http_status=scrape.http_status,
        error_kind=scrape.error_kind,
        message=scrape.message,
        attempts=scrape.attempts,
        duration_ms=scrape.duration_ms,
        result=scrape.result,
        created_at=scrape.created_at,
        finished_at=scrape.finished_at,
    )


@api_route(
    "/scrapes",
    "POST",
    summary="Start a scrape",
    tag=TAG,
    permission="scrape.run",
    body=ScrapeStart,
    response=ScrapeOut,
    status=202,
)
def create_scrape(principal: Principal, body: ScrapeStart) -> ScrapeOut:
    """Queue a scrape; a URL that points inside a private network is refused with 422 before anything runs."""
    scrape = service.start_scrape(principal.workspace, principal.user, body.url, body.extractor, source="api")
    db.session.commit()
    return _out(scrape)


@api_route(
    "/scrapes/<int:scrape_id>", "GET", summary="A scrape's status", tag=TAG, permission="scrape.run", response=ScrapeOut
)
def get_scrape(principal: Principal, scrape_id: int) -> ScrapeOut:
    """Poll this until ``status`` is done or failed."""
    return _out(service.get_scrape_or_404(principal.workspace, scrape_id))


@api_route(
    "/scrapes/<int:scrape_id>/result",
    "GET",
    summary="A finished scrape's extracted fields",
    tag=TAG,
    permission="scrape.run",
    response=ScrapeResultOut,
    errors=(409,),
)
def get_scrape_result(principal: Principal, scrape_id: int) -> ScrapeResultOut:
    """The extractor's JSON; 409 while the scrape is still running or when it failed."""
    scrape = service.get_scrape_or_404(principal.workspace, scrape_id)
    if scrape.status != "done":
        raise Conflict(scrape.message or f"The scrape is {scrape.status}; poll it until it is done.")
    return ScrapeResultOut(
        id=scrape.id, url=scrape.url, final_url=scrape.final_url, extractor=scrape.extractor, result=scrape.result or {}
    )


@api_route("/extractors", "GET", summary="Extractors", tag=TAG, permission="scrape.run", response=list[ExtractorOut])
def list_extractors(principal: Principal) -> list[ExtractorOut]:
    """What a scrape can read, and the fields each extractor delivers."""
    return [
        ExtractorOut(name=e.name, label=e.label, description=e.description, fields=list(e.fields))
        for e in all_extractors()
    ]
