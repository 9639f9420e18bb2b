"""Health, readiness and metrics endpoints, and the landing page."""

from flask import Blueprint, Flask

bp = Blueprint("system", __name__)


def register(app: Flask) -> None:
    from morket.system import mailbox, views  # noqa: F401

    app.register_blueprint(bp)
