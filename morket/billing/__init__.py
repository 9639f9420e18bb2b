"""Billing with Stripe: plans and their limits, Checkout and the customer portal, webhooks
processed exactly once, credit packs."""

from flask import Blueprint, Flask

bp = Blueprint("billing", __name__)


def register(app: Flask) -> None:
    from morket.billing import models, views  # noqa: F401 - the models and routes (api: see morket.API_MODULES)

    app.register_blueprint(bp)
