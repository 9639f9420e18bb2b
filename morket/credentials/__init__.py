"""Provider credentials: per-workspace API keys encrypted at rest, never shown again."""

from flask import Blueprint, Flask

bp = Blueprint("credentials", __name__)


def register(app: Flask) -> None:
    from morket.credentials import models, views  # noqa: F401 - register the models and routes (api: see morket.api)
    from morket.credentials.cli import credentials_cli

    app.register_blueprint(bp)
    app.cli.add_command(credentials_cli)
