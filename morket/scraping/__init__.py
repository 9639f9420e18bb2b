"""Scraping: Playwright browser workers, extractors, the try-a-URL page and API."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, has_app_context

bp = Blueprint("scraping", __name__)
_APP: Flask | None = None


def register(app: Flask) -> None:
    from morket.scraping import models, views  # noqa: F401 - register the models and routes (api: see morket.api)

    global _APP
    _APP = app
    app.register_blueprint(bp)


def app_for_threads() -> Flask:
    """The app, also from threads without an app context (the enrichment engine's provider calls)."""
    if has_app_context():
        return current_app._get_current_object()
    if _APP is None:
        raise RuntimeError("the scraping blueprint is not registered")
    return _APP
