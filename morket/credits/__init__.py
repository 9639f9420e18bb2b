"""Credits: the append-only ledger per workspace, balance, grants, refunds and adjustments."""

from flask import Blueprint, Flask

bp = Blueprint("credits", __name__)


def register(app: Flask) -> None:
    from morket.credits import models, views  # noqa: F401 - register the models and routes (api: see morket.api)

    app.register_blueprint(bp)
