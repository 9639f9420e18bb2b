"""Tables: the workspace's spreadsheets (metadata, typed physical storage, views, windowed reads)."""

from flask import Blueprint, Flask

bp = Blueprint("tables", __name__)


def register(app: Flask) -> None:
    from morket.api.routing import register_droppable_schema
    from morket.tables import (  # noqa: F401 - register the tables (and undo steps) with the metadata
        column_views,  # the column endpoints
        edit_views,  # the grid edit endpoints
        hooks,
        live,
        live_views,  # the live grid's stream
        lookup_views,  # the lookup column settings and preview
        models,
        overview_views,
        page_errors,  # a table dropped under a page request is a 404
        undo,
        views,  # the table pages
    )
    from morket.workspaces.overview import add_overview_section

    register_droppable_schema(models.USER_SCHEMA)
    add_overview_section("tables", overview_views.overview_tables)
    hooks.on_row_events("live", live.on_row_events)
    hooks.on_rows_changed("live", live.on_rows_changed)
    app.register_blueprint(bp)
