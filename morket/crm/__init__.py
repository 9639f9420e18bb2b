"""CRM connections: HubSpot and Salesforce over OAuth, per workspace, tokens encrypted at rest."""

from flask import Blueprint, Flask

bp = Blueprint("crm", __name__)


def register(app: Flask) -> None:
    from morket.crm import (  # noqa: F401 - register the models and routes (push_views: the push executor too)
        models,
        pull_models,
        pull_views,
        push_views,
        views,
    )
    from morket.crm.oauth import install_log_filter

    install_log_filter()
    app.register_blueprint(bp)
