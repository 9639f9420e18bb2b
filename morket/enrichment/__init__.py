"""Enrichment: columns that fill themselves from providers, runs, cell states, cache."""

from flask import Blueprint, Flask

bp = Blueprint("enrichment", __name__)


def register(app: Flask) -> None:
    from morket.enrichment import models, panel_views, service, views  # noqa: F401 - register the models and routes (api: see morket.api)
    from morket.enrichment.config import CELL_STATE_LABELS
    from morket.tables import hooks

    # Tables knows enrichment only through what it registers here: its cells' states and labels,
    # and the auto-run of its columns over rows an edit wrote.
    hooks.register_cell_states(CELL_STATE_LABELS)
    hooks.on_rows_changed("enrichment", service.on_rows_changed)
    app.register_blueprint(bp)
