"""The JSON API of billing under /api/v1: plan and usage, credit packs (start a checkout), invoices,
the auto top-up setting.

Like the pages, only owners, admins and billing admins reach it; other roles get 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import url_for
from pydantic import Field, model_validator

from morket.api.routing import Principal, api_route, user_actor
from morket.api.schemas import Out, Request
from morket.billing import plans, service, topup
from morket.credits import service as credits
from morket.extensions import db

TAG = "Billing"
PERMISSION = "billing.manage"
PlanKey = Literal["free", "starter", "pro", "team"]
PackKey = Literal["pack_5k", "pack_25k"]
assert set(PlanKey.__args__) == set(plans.PLANS) and set(PackKey.__args__) == set(plans.PACKS)


class PlanOut(Out):
    key: PlanKey
    name: str
    monthly_usd: int
    monthly_credits: int
    seats: int | None = Field(description="Members and pending invitations allowed; null means unlimited.")
    run_rows: int | None = Field(description="Rows one enrichment run may cover; null means unlimited.")
    crm_sync: bool
    ai: bool


class UsageLine(Out):
    label: str
    credits: int


class BillingOut(Out):
    """The workspace's plan, its state at Stripe, its credits and this period's usage."""

    plan: PlanOut
    subscription_status: str | None
    renews_at: datetime | None = Field(description="End of the current period (renewal or end date).")
    cancel_at_period_end: bool
    grace_until: datetime | None = Field(description="After a failed renewal: when the plan falls to free.")
    credit_shortfall: int = Field(description="Credits owed after a refund or dispute; runs wait until repaid.")
    balance: int
    usage_since: datetime
    usage_total: int
    usage_by_user: list[UsageLine]
    usage_by_column: list[UsageLine]
    usage_by_provider: list[UsageLine]


class PackOut(Out):
    key: PackKey
    name: str
    credits: int
    usd: int


class CheckoutRequest(Request):
    """Buy a plan (a subscription) or a credit pack (a one-time payment): give exactly one."""

    plan: Literal["starter", "pro", "team"] | None = None
    pack: PackKey | None = None

    @model_validator(mode="after")
    def _one(self) -> CheckoutRequest:
        if (self.plan is None) == (self.pack is None):
            raise ValueError("give either plan or pack")
        return self


class CheckoutOut(Out):
    session_id: str
    url: str = Field(description="Stripe Checkout's page: send the buyer there.")


class InvoiceOut(Out):
    id: str
    number: str | None
    status: str | None
    amount_cents: int
    currency: str
    created: datetime | None
    url: str | None


class AutoTopupOut(Out):
    """Buy a credit pack when the balance falls below a threshold: once per crossing, at most once a day."""

    enabled: bool
    pack: PackKey | None = Field(description="The pack bought; null when auto top-up is off.")
    threshold: int | None = Field(description="Credits; a top-up starts when the balance falls below it.")
    bought_for_this_crossing: bool = Field(
        description="A top-up was started since the balance fell below the threshold; the next one waits "
        "until the balance has been at or above it again."
    )
    last_topup_at: datetime | None = Field(description="When the last top-up was started.")
    last_result: str | None = Field(description="What Stripe reported for the last top-up (paid, or why not).")


class AutoTopupUpdate(Request):
    """Turn auto top-up on with a pack and a threshold, or off (``enabled: false``, nothing else needed).

    It charges the card Stripe keeps from an earlier checkout: without one it is refused (422).
    """

    enabled: bool = Field(strict=True)
    pack: PackKey | None = None
    threshold: int | None = Field(default=None, ge=0, le=topup.THRESHOLD_MAX, strict=True,
                                  description="Credits, from 0 to 10,000,000.")  # fmt: skip

    @model_validator(mode="after")
    def _complete(self) -> AutoTopupUpdate:
        if self.enabled and (self.pack is None or self.threshold is None):
            raise ValueError("give pack and threshold to turn auto top-up on")
        return self


def _auto_topup_out(workspace_id: int) -> AutoTopupOut:
    account = service.get_account(workspace_id)
    last = topup.last_result(workspace_id)
    on = account is not None and account.auto_topup_pack is not None and account.auto_topup_threshold is not None
    return AutoTopupOut(
        enabled=on,
        pack=account.auto_topup_pack if on and account else None,  # type: ignore[arg-type]
        threshold=account.auto_topup_threshold if on and account else None,
        bought_for_this_crossing=bool(on and account and account.auto_topup_spent),
        last_topup_at=account.last_topup_at if account else None,
        last_result=last.summary if last is not None else None,
    )


def _plan_out(plan: plans.Plan) -> PlanOut:
    return PlanOut(
        key=plan.key,  # type: ignore[arg-type]
        name=plan.name,
        monthly_usd=plan.monthly_usd,
        monthly_credits=plan.monthly_credits,
        seats=plan.seats,
        run_rows=plan.run_rows,
        crm_sync=plan.crm_sync,
        ai=plan.ai,
    )


def _lines(rows: list[tuple[str, int]]) -> list[UsageLine]:
    return [UsageLine(label=label, credits=amount) for label, amount in rows]


@api_route("/billing", "GET", summary="Plan and usage", tag=TAG, permission=PERMISSION, response=BillingOut,
           hidden=True)  # fmt: skip
def get_billing(principal: Principal) -> BillingOut:
    """The plan whose limits apply now, renewal, grace period, balance and this period's credit usage."""
    workspace_id = principal.workspace.id
    account = service.get_account(workspace_id)
    use = service.usage(workspace_id, service.period_start(account))
    return BillingOut(
        plan=_plan_out(service.effective_plan(account)),
        subscription_status=account.subscription_status if account else None,
        renews_at=account.current_period_end if account else None,
        cancel_at_period_end=bool(account and account.cancel_at_period_end),
        grace_until=account.grace_until if account else None,
        credit_shortfall=account.credit_shortfall if account else 0,
        balance=credits.balance(workspace_id),
        usage_since=use.since,
        usage_total=use.total,
        usage_by_user=_lines(use.by_user),
        usage_by_column=_lines(use.by_column),
        usage_by_provider=_lines(use.by_provider),
    )


@api_route("/billing/plans", "GET", summary="Plans", tag=TAG, permission=PERMISSION, response=list[PlanOut],
           hidden=True)  # fmt: skip
def list_plans(principal: Principal) -> list[PlanOut]:
    """Every plan with its monthly credits and limits."""
    return [_plan_out(plan) for plan in plans.PLANS.values()]


@api_route("/billing/packs", "GET", summary="Credit packs", tag=TAG, permission=PERMISSION, response=list[PackOut],
           hidden=True)  # fmt: skip
def list_packs(principal: Principal) -> list[PackOut]:
    """The one-time credit packs on sale."""
    return [PackOut(key=p.key, name=p.name, credits=p.credits, usd=p.usd) for p in plans.PACKS.values()]  # type: ignore[arg-type]


@api_route(
    "/billing/checkout",
    "POST",
    summary="Start a checkout",
    tag=TAG,
    permission=PERMISSION,
    body=CheckoutRequest,
    response=CheckoutOut,
    status=201,
    errors=(409, 503),
    hidden=True,
)
def start_checkout(principal: Principal, body: CheckoutRequest) -> CheckoutOut:
    """Open a Stripe Checkout session; the plan or credits arrive when Stripe reports the payment, not before."""
    workspace = principal.workspace
    back = url_for("billing.index", slug=workspace.slug, _external=True)
    started = service.start_checkout(
        workspace,
        principal.user,
        plan_key=body.plan,
        pack_key=body.pack,
        success_url=back + "?checkout=success&session_id={CHECKOUT_SESSION_ID}",
        cancel_url=back + "?checkout=cancelled",
    )
    db.session.commit()
    return CheckoutOut(session_id=started.session_id, url=started.url)


@api_route("/billing/invoices", "GET", summary="Invoices", tag=TAG, permission=PERMISSION,
           response=list[InvoiceOut], errors=(503,), hidden=True)  # fmt: skip
def list_invoices(principal: Principal) -> list[InvoiceOut]:
    """The workspace's latest invoices, as Stripe has them."""
    return [InvoiceOut.model_validate(line) for line in service.list_invoices(principal.workspace.id)]


@api_route("/billing/auto-topup", "GET", summary="Auto top-up setting", tag=TAG, permission=PERMISSION,
           response=AutoTopupOut, hidden=True)  # fmt: skip
def get_auto_topup(principal: Principal) -> AutoTopupOut:
    """Whether a credit pack is bought when the balance falls below a threshold, which, and how it last went."""
    return _auto_topup_out(principal.workspace.id)


@api_route("/billing/auto-topup", "PUT", summary="Set auto top-up", tag=TAG, permission=PERMISSION,
           body=AutoTopupUpdate, response=AutoTopupOut, hidden=True)  # fmt: skip
def set_auto_topup(principal: Principal, body: AutoTopupUpdate) -> AutoTopupOut:
    """Turn auto top-up on (a pack and a threshold) or off. Needs a user's token (the change is audited)."""
    workspace = principal.workspace
    topup.configure(
        workspace,
        user_actor(principal),
        pack_key=body.pack if body.enabled else None,
        threshold=body.threshold if body.enabled else None,
    )
    db.session.commit()
    return _auto_topup_out(workspace.id)
