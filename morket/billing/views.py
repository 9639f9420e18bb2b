"""Pages of billing, and Stripe's webhook endpoint.

Only owners, admins and billing admins (``billing.manage``) reach billing; other members get 404.
The return from Checkout shows a note and grants nothing: plans and credits change when Stripe's
webhook reports the payment (``events``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Response, abort, current_app, flash, jsonify, redirect, request, url_for
from flask_login import current_user

from morket.billing import bp, events, plans, service, topup
from morket.core.errors import MorketError
from morket.core.htmx import render_page_or_fragment
from morket.core.logging import log_security_event
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.core.web import CSP
from morket.credits import service as credits
from morket.extensions import csrf, db, limiter
from morket.workspaces.models import Workspace as WorkspaceRow

PERMISSION = "billing.manage"
# Where Stripe's hosted Checkout and customer portal live (the sandbox's origin when one is set).
STRIPE_PAGES = "https://checkout.stripe.com https://billing.stripe.com"


def notice(workspace_id: int) -> dict[str, object] | None:
    """What a workspace's banner says about billing: a failed renewal's grace period, or credits owed."""
    account = service.get_account(workspace_id)
    if account is None:
        return None
    if account.grace_until is not None:
        return {
            "kind": "grace",
            "grace_until": account.grace_until,
            "plan": plans.plan(account.plan).name,
        }
    if account.credit_shortfall > 0:
        return {"kind": "shortfall", "owed": account.credit_shortfall}
    return None


@bp.get("/w/<slug>/billing")
@workspace_page(PERMISSION, hidden=True)
def index(workspace: Workspace, membership: Member) -> Response:
    """Plan, renewal, this period's usage, plans and packs to buy, invoices from Stripe."""
    account = service.get_account(workspace.id)
    current = service.effective_plan(account)
    since = service.period_start(account)
    invoices: list[service.InvoiceLine] = []
    invoices_error = None
    try:
        invoices = service.list_invoices(workspace.id)
    except MorketError as exc:
        invoices_error = exc.message
    returned = request.args.get("checkout")
    resp = render_page_or_fragment(
        "billing/index.html",
        200,
        workspace=workspace,
        membership=membership,
        account=account,
        plan=current,
        plans=list(plans.PLANS.values()),
        packs=list(plans.PACKS.values()),
        balance=credits.balance(workspace.id),
        usage=service.usage(workspace.id, since),
        invoices=invoices,
        invoices_error=invoices_error,
        notice=notice(workspace.id),
        topup_last=topup.last_result(workspace.id),
        returned=returned if returned in ("success", "cancelled") else None,
        configured=bool(current_app.config["MORKET"]["STRIPE_SECRET_KEY"]),
    )
    return _allow_stripe_pages(resp)


def _allow_stripe_pages(resp: Response) -> Response:
    """Let this page's forms land on Stripe's Checkout and portal (browsers apply form-action to redirects)."""
    base = current_app.config["MORKET"]["STRIPE_API_BASE"]
    if base:
        parts = urlsplit(base)
        origins = f"{parts.scheme}://{parts.netloc}"
    else:
        origins = STRIPE_PAGES
    resp.headers["Content-Security-Policy"] = CSP.replace("form-action 'self'", f"form-action 'self' {origins}")
    return resp


def _back(workspace: Workspace, **args: str) -> str:
    return url_for("billing.index", slug=workspace.slug, _external=True, **args)


@bp.post("/w/<slug>/billing/checkout")
@workspace_page(PERMISSION, hidden=True)
def checkout(workspace: Workspace, membership: Member) -> Response:
    """Start Stripe Checkout for the chosen plan or pack and send the browser there."""
    plan_key = request.form.get("plan") or None
    pack_key = request.form.get("pack") or None
    try:
        started = service.start_checkout(
            workspace,
            current_user,
            plan_key=plan_key,
            pack_key=pack_key,
            success_url=_back(workspace, checkout="success") + "&session_id={CHECKOUT_SESSION_ID}",
            cancel_url=_back(workspace, checkout="cancelled"),
        )
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("billing.index", slug=workspace.slug), code=303)
    db.session.commit()
    return redirect(started.url, code=303)


@bp.post("/w/<slug>/billing/auto-topup")
@workspace_page(PERMISSION, hidden=True)
def auto_topup(workspace: Workspace, membership: Member) -> Response:
    """Turn auto top-up on (a pack and a threshold) or off."""
    try:
        account = topup.configure(
            workspace, current_user, pack_key=request.form.get("pack") or None, threshold=request.form.get("threshold")
        )
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("billing.index", slug=workspace.slug), code=303)
    db.session.commit()
    if account.auto_topup_pack:
        pack = plans.PACKS[account.auto_topup_pack]
        flash(f"Auto top-up on: {pack.name} when the balance falls below {account.auto_topup_threshold:,} credits.",
              "success")  # fmt: skip
    else:
        flash("Auto top-up off.", "success")
    return redirect(url_for("billing.index", slug=workspace.slug), code=303)


@bp.post("/w/<slug>/billing/portal")
@workspace_page(PERMISSION, hidden=True)
def portal(workspace: Workspace, membership: Member) -> Response:
    """Open Stripe's customer portal (cards, plan changes, cancelling, invoices)."""
    try:
        url = service.open_portal(workspace, current_user, return_url=_back(workspace))
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("billing.index", slug=workspace.slug), code=303)
    db.session.commit()
    return redirect(url, code=303)


@bp.post("/billing/stripe/webhook")
@csrf.exempt
@limiter.exempt
def stripe_webhook() -> tuple[Response, int]:
    """Stripe's events: verified, applied once with their effects, or refused (400) changing nothing."""
    try:
        event = events.verify(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    except MorketError as exc:
        if exc.status == 400:
            log_security_event("stripe_webhook_refused", reason=exc.message)
        return jsonify({"error": {"code": exc.code, "message": exc.message}}), exc.status
    try:
        outcome = events.process(event)
        db.session.commit()
    except Exception as exc:  # any failure: keep nothing of it, note it, let Stripe retry
        db.session.rollback()
        current_app.logger.exception("stripe event failed", extra={"stripe_event": event.id, "type": event.type})
        events.record_failure(event, exc)
        db.session.commit()
        return jsonify({"error": {"code": "processing_failed", "message": "Will be processed on retry."}}), 500
    return jsonify({"received": True, "status": outcome.status}), 200


@bp.post("/admin/workspaces/<int:workspace_id>/billing/purchases/<int:purchase_id>/refund")
@csrf.exempt  # the admin console checks CSRF after its own check, so a refused POST is a plain 404
def admin_refund(workspace_id: int, purchase_id: int) -> Response:
    """A platform admin refunds a purchase at Stripe, with a reason; the webhook takes the credits back."""
    workspace = db.session.get(WorkspaceRow, workspace_id)
    if workspace is None or not current_user.is_authenticated or not current_user.is_platform_admin:
        abort(404)
    try:
        refund = service.admin_refund(current_user, workspace, purchase_id, request.form.get("reason", ""))
    except MorketError as exc:
        db.session.rollback()
        if exc.status == 404:
            abort(404)
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(f"Refund {refund} requested at Stripe; the credits come back out when Stripe confirms it.", "success")
    return redirect(url_for("admin.workspace", workspace_id=workspace_id), code=303)
