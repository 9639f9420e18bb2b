"""Scraping: Playwright browser workers, extractors, the try-a-URL page and API."""

from flask import Blueprint, Flask

bp = Blueprint("scraping", __name__)


def register(app: Flask) -> None:
    from morket.scraping import models, views  # noqa: F401 - register the models and routes (api: see morket.api)

    app.register_blueprint(bp)
