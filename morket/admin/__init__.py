"""The platform admin console under /admin."""

from flask import Blueprint, Flask

bp = Blueprint("admin", __name__, url_prefix="/admin")


def register(app: Flask) -> None:
    from morket.admin import views  # noqa: F401

    app.register_blueprint(bp)
