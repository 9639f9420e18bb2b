"""Workspaces, members, roles, invitations and API keys, under /w/<slug>/."""

from flask import Blueprint, Flask

bp = Blueprint("workspaces", __name__)


def register(app: Flask) -> None:
    from morket.workspaces import views  # noqa: F401

    app.register_blueprint(bp)
