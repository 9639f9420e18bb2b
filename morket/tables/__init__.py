"""Tables: the workspace's spreadsheets (metadata, typed physical storage, views, windowed reads)."""

from flask import Blueprint, Flask

bp = Blueprint("tables", __name__)


def register(app: Flask) -> None:
    from morket.tables import (  # noqa: F401 - register the tables (and undo steps) with the metadata
        column_views,  # noqa: F401 - the column endpoints
        edit_views,  # noqa: F401 - the grid edit endpoints
        models,
        undo,
        views,  # noqa: F401 - the table pages
    )

    app.register_blueprint(bp)
