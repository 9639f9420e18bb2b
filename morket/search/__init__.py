"""Search across a workspace's tables: one service over two engines (PostgreSQL full text and
trigrams, or OpenSearch)."""

from flask import Blueprint, Flask

bp = Blueprint("search", __name__)


def register(app: Flask) -> None:
    from morket.search import models, service, views  # noqa: F401 - the models and routes (api: see morket.api)
    from morket.search.cli import search_cli
    from morket.tables import hooks

    app.register_blueprint(bp)
    app.cli.add_command(search_cli)
    # Written rows reach the index right after their commit (the storage triggers mark them).
    hooks.on_row_events("search", service.queue_sync)
    hooks.on_rows_changed("search", service.queue_sync)
