"""CRM connections: HubSpot and Salesforce over OAuth, per workspace, tokens encrypted at rest."""

from flask import Blueprint, Flask

bp = Blueprint("crm", __name__)


def register(app: Flask) -> None:
    from morket.crm import models, pull_models, pull_views, views  # noqa: F401 - register the models and routes
    from morket.crm import push_executor, push_models, push_views  # noqa: F401 - the push executor, mapping, pages
    from morket.crm.oauth import install_log_filter

    install_log_filter()
    app.register_blueprint(bp)
