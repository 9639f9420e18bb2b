"""What enrichment costs in platform credits: the one place prices are set, and the charging rule.

Prices key on the operation key (``<provider>.<operation>``, see morket/providers/base.py). The
charging rule (docs/ARCHITECTURE.md, "Charging rule"): a workspace pays once per value a column
*delivers*, the price of the step that delivered it plus the price of the column's validation
step. Rejected, not-found and failed attempts cost the workspace nothing. A part done with the
workspace's own provider key costs no platform credits. ``delivery_price`` is that rule; the
estimate, the engine's charge and the run page all use it.
"""

from __future__ import annotations

from collections.abc import Container

PRICES: dict[str, int] = {
    "apollo.people_match": 2,
    "apollo.organization_enrich": 1,
    "hunter.domain_search": 2,
    "hunter.email_finder": 2,
    "hunter.email_verifier": 1,
    "clearbit.person": 2,
    "clearbit.company": 1,
    "clearbit.combined": 3,
    "http.request": 0,
    # A scrape by Morket's own browser workers: charged per delivered scrape like any provider.
    "website.scrape": 1,
}


def price(operation_key: str) -> int:
    """Return the list price of one call of ``operation_key`` (0 for an unpriced operation)."""
    return PRICES.get(operation_key, 0)


def provider_of(operation_key: str) -> str:
    """The provider name of an operation key (the registry makes every key ``<provider>.<op>``)."""
    return operation_key.split(".", 1)[0]


def delivery_price(operation_key: str, validation_key: str | None, *, own: Container[str] = ()) -> int:
    """Credits one delivered value costs: its step's price plus its validation's, own-key parts free.

    ``own`` names the providers the workspace reaches with its own key.
    """
    parts = [operation_key] + ([validation_key] if validation_key else [])
    return sum(price(key) for key in parts if provider_of(key) not in own)
