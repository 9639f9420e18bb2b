"""Enrichment: columns that fill themselves from providers, runs, cell states, cache."""

from flask import Blueprint, Flask

bp = Blueprint("enrichment", __name__)


def register(app: Flask) -> None:
    from morket.enrichment import models, views  # noqa: F401 - register the models and routes (api: see morket.api)

    app.register_blueprint(bp)
