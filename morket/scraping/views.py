"""The 'scrape a URL' page: try an extractor on one URL and see the screenshot and extracted JSON."""

from __future__ import annotations

import json

from flask import Response, make_response, render_template, request, url_for
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.extensions import db
from morket.scraping import bp, service
from morket.scraping.extractors import all_extractors
from morket.workspaces.forms import ROLE_LABELS


def _render(template: str, status: int = 200, **context):  # noqa: ANN003
    resp = make_response(
        render_template(template, can=can, role_labels=ROLE_LABELS, extractors=all_extractors(), **context), status
    )
    resp.vary.add("HX-Request")
    return resp


@bp.get("/w/<slug>/scrape")
@workspace_page("scrape.run")
def try_page(workspace, membership):  # noqa: ANN001
    """The form, and the workspace's recent scrapes."""
    return _render(
        "scraping/try.html", workspace=workspace, membership=membership, scrapes=service.list_scrapes(workspace)
    )


@bp.post("/w/<slug>/scrape")
@workspace_page("scrape.run")
def start(workspace, membership):  # noqa: ANN001
    """Queue a scrape and go to its page, whose result panel polls until the worker is done."""
    target = (request.form.get("url") or "").strip()
    extractor = request.form.get("extractor") or "company"
    try:
        scrape = service.start_scrape(workspace, current_user, target, extractor, source="page")
    except MorketError as exc:
        db.session.rollback()
        return _render(
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
def show(workspace, membership, scrape_id: int):  # noqa: ANN001
    """One scrape: the full page, or (for htmx polling) its result panel; 286 stops the polling."""
    scrape = service.get_scrape_or_404(workspace, scrape_id)
    pretty = json.dumps(scrape.result, indent=2, ensure_ascii=False) if scrape.result is not None else None
    if request.headers.get("HX-Request") and not request.headers.get("HX-Boosted"):
        return _render(
            "scraping/_result.html", 286 if scrape.is_final else 200, workspace=workspace, scrape=scrape, pretty=pretty
        )
    return _render(
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
def screenshot(workspace, membership, scrape_id: int):  # noqa: ANN001
    """The page as the worker's browser saw it (a JPEG we rendered, never the site's own bytes)."""
    scrape = service.get_scrape_or_404(workspace, scrape_id)
    if not scrape.screenshot:
        return Response("No screenshot.", status=404, mimetype="text/plain")
    resp = Response(scrape.screenshot, mimetype="image/jpeg")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    resp.headers["Content-Disposition"] = "inline"
    return resp
