"""The plans and credit packs Morket sells: declared once, here, with the limits each plan sets.

A plan's Stripe price id comes from the settings (``MORKET_STRIPE_PRICE_<PLAN>``), so test and live
accounts differ only in configuration. The free plan has no price: a workspace with no active
subscription is on it. Limits are enforced where the features are (a seat limit on invitations,
a feature flag on CRM connections and AI columns, the rows of one enrichment run), each with a
message that names the plan that lifts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

FREE = "free"


@dataclass(frozen=True)
class Plan:
    """A tier: its price, monthly credit allowance and the limits it sets (None means unlimited)."""

    key: str
    name: str
    monthly_usd: int
    monthly_credits: int
    seats: int | None
    run_rows: int | None
    crm_sync: bool
    ai: bool
    setting: str | None  # the MORKET_* setting naming its Stripe price; None for the free plan

    @property
    def price_id(self) -> str | None:
        return price_id(self.setting) if self.setting else None


@dataclass(frozen=True)
class CreditPack:
    """A one-time purchase of credits."""

    key: str
    name: str
    credits: int
    usd: int
    setting: str

    @property
    def price_id(self) -> str:
        return price_id(self.setting)


PLANS: dict[str, Plan] = {
    plan.key: plan
    for plan in (
        Plan(FREE, "Free", 0, 0, seats=2, run_rows=500, crm_sync=False, ai=False, setting=None),
        Plan(
            "starter",
            "Starter",
            49,
            5_000,
            seats=3,
            run_rows=5_000,
            crm_sync=False,
            ai=True,
            setting="STRIPE_PRICE_STARTER",
        ),  # fmt: skip
        Plan("pro", "Pro", 149, 20_000, seats=10, run_rows=50_000, crm_sync=True, ai=True, setting="STRIPE_PRICE_PRO"),
        Plan(
            "team", "Team", 499, 100_000, seats=None, run_rows=None, crm_sync=True, ai=True, setting="STRIPE_PRICE_TEAM"
        ),  # fmt: skip
    )
}
PAID_PLANS: tuple[str, ...] = tuple(key for key in PLANS if key != FREE)

PACKS: dict[str, CreditPack] = {
    pack.key: pack
    for pack in (
        CreditPack("pack_5k", "5,000 credits", 5_000, 50, "STRIPE_PRICE_PACK_5K"),
        CreditPack("pack_25k", "25,000 credits", 25_000, 200, "STRIPE_PRICE_PACK_25K"),
    )
}

FEATURE_LABELS = {"crm_sync": "CRM sync", "ai": "AI columns"}


def price_id(setting: str) -> str:
    return str(current_app.config["MORKET"][setting])


def plan(key: str | None) -> Plan:
    """The plan named ``key``; an unknown or missing key is the free plan."""
    return PLANS.get(key or FREE, PLANS[FREE])


def plan_for_price(price: str | None) -> Plan | None:
    """The paid plan whose Stripe price is ``price``, or None."""
    for candidate in PLANS.values():
        if candidate.setting and price and candidate.price_id == price:
            return candidate
    return None


def pack_for_price(price: str | None) -> CreditPack | None:
    for candidate in PACKS.values():
        if price and candidate.price_id == price:
            return candidate
    return None


def cheapest_with(feature: str) -> Plan | None:
    """The cheapest paid plan that has ``feature`` (a flag name) or more of it."""
    for candidate in sorted(PLANS.values(), key=lambda p: p.monthly_usd):
        if candidate.key != FREE and getattr(candidate, feature):
            return candidate
    return None


def upgrade_message(current: Plan, what: str, better: Plan | None) -> str:
    """One sentence: what the plan does not allow and which plan does."""
    if better is None:
        return f"The {current.name} plan does not allow {what}."
    return f"The {current.name} plan does not allow {what}. Upgrade to {better.name} on the Billing page."
