"""The 'scrape a URL' page: try an extractor on one URL and see the screenshot and extracted JSON."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, make_response, request, url_for
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.htmx import render_page_or_fragment, wants_fragment
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db
from morket.scraping import bp, service
from morket.scraping.extractors import all_extractors


@bp.context_processor
def _extractors() -> dict[str, Any]:
    return {"extractors": all_extractors()}


@bp.get("/w/<slug>/scrape")
@workspace_page("scrape.run")
def try_page(workspace: Workspace, membership: Member) -> Response:
    """The form, and the workspace's recent scrapes."""
    return render_page_or_fragment(
        "scraping/try.html", workspace=workspace, membership=membership, scrapes=service.list_scrapes(workspace)
    )


@bp.post("/w/<slug>/scrape")
@workspace_page("scrape.run")
def start(workspace: Workspace, membership: Member) -> Response:
    """Queue a scrape and go to its page, whose result panel polls until the worker is done."""
    target = (request.form.get("url") or "").strip()
    extractor = request.form.get("extractor") or "company"
    try:
        scrape = service.start_scrape(workspace, current_user, target, extractor, source="page")
    except MorketError as exc:
        db.session.rollback()
        return render_page_or_fragment(
            "scraping/try.html",
            422,
            workspace=workspace,
            membership=membership,
            scrapes=service.list_scrapes(workspace),
            error=exc.message,
            target=target,
            chosen=extractor,
        )
    db.session.commit()
    resp = make_response("", 303)
    resp.headers["Location"] = url_for("scraping.show", slug=workspace.slug, scrape_id=scrape.id)
    return resp


@bp.get("/w/<slug>/scrape/<int:scrape_id>")
@workspace_page("scrape.run")
def show(workspace: Workspace, membership: Member, scrape_id: int) -> Response:
    """One scrape: the full page, or (for htmx polling) its result panel; 286 stops the polling."""
    scrape = service.get_scrape_or_404(workspace, scrape_id)
    pretty = json.dumps(scrape.result, indent=2, ensure_ascii=False) if scrape.result is not None else None
    if wants_fragment():
        return render_page_or_fragment(
            "scraping/_result.html", 286 if scrape.is_final else 200, workspace=workspace, scrape=scrape, pretty=pretty
        )
    return render_page_or_fragment(
        "scraping/try.html",
        workspace=workspace,
        membership=membership,
        scrapes=service.list_scrapes(workspace),
        current=scrape,
        pretty=pretty,
        target=scrape.url,
        chosen=scrape.extractor,
    )


@bp.get("/w/<slug>/scrape/<int:scrape_id>/screenshot.jpg")
@workspace_page("scrape.run")
def screenshot(workspace: Workspace, membership: Member, scrape_id: int) -> Response:
    """The page as the worker's browser saw it (a JPEG we rendered, never the site's own bytes)."""
    scrape = service.get_scrape_or_404(workspace, scrape_id)
    if not scrape.screenshot:
        return Response("No screenshot.", status=404, mimetype="text/plain")
    resp = Response(scrape.screenshot, mimetype="image/jpeg")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    resp.headers["Content-Disposition"] = "inline"
    return resp
