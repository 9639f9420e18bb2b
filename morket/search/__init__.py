"""Search across a workspace's tables: one service over two engines (PostgreSQL full text and
trigrams, or OpenSearch)."""

from flask import Blueprint, Flask

bp = Blueprint("search", __name__)


def register(app: Flask) -> None:
    from morket.search import views  # noqa: F401 - register the routes (api: see morket.api)

    app.register_blueprint(bp)
