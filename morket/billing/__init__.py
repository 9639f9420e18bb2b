"""Billing with Stripe: plans and their limits, Checkout and the customer portal, webhooks
processed exactly once, credit packs."""

from flask import Blueprint, Flask

bp = Blueprint("billing", __name__)


def register(app: Flask) -> None:
    from morket.billing import models, service, topup, views  # noqa: F401 - the models and routes (api: see morket.API_MODULES)
    from morket.credits.service import on_balance_lowered
    from morket.workspaces.overview import add_overview_section
    from morket.workspaces.service import on_invite

    on_invite("billing.seats", lambda workspace, taken: service.check_seats(workspace.id, taken))
    on_balance_lowered("billing.auto_topup", topup.balance_lowered)
    add_overview_section("billing", lambda workspace, membership: {"billing_notice": views.notice(workspace.id)})
    app.add_template_global(service.admin_summary, "billing_admin_summary")
    app.register_blueprint(bp)
