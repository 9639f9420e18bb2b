"""Inbound webhook sources: per-table URLs that turn posted JSON into rows (the API's /hooks/in)."""

from flask import Blueprint, Flask

bp = Blueprint("inbound", __name__)


def register(app: Flask) -> None:
    from morket.inbound import models, service, views  # noqa: F401 - register the models and routes (api: see morket.api)

    # The table page asks this whether to watch for rows arriving (only tables with a source do).
    app.add_template_global(views.pulse_url, "inbound_pulse_url")
    app.register_blueprint(bp)
