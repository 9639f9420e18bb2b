"""Credits: the append-only ledger per workspace, balance, grants, refunds and adjustments."""

from flask import Blueprint, Flask

bp = Blueprint("credits", __name__)


def register(app: Flask) -> None:
    from morket.credits import models, service, views  # noqa: F401 - the models and routes (api: morket.API_MODULES)
    from morket.workspaces.service import on_workspace_created

    on_workspace_created("credits.welcome", service.grant_welcome)
    app.register_blueprint(bp)
