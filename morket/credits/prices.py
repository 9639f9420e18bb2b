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


# Language models: platform credits per million tokens (input, output), for answers from the
# platform's default endpoint (a workspace's own endpoint costs no platform credits). One credit
# is about one US cent, so these follow the providers' list prices; the sandbox models are dear on
# purpose so that tests see whole credits from a few hundred tokens.
MODEL_PRICES: dict[str, tuple[int, int]] = {
    "gpt-4o-mini": (15, 60),
    "gpt-4.1-mini": (40, 160),
    "gpt-4.1-nano": (10, 40),
    "gpt-4o": (250, 1000),
    "gpt-4.1": (200, 800),
    "claude-haiku-4-5": (100, 500),
    "claude-sonnet-4-5": (300, 1500),
    "sandbox-small": (10_000, 40_000),
    "sandbox-large": (30_000, 120_000),
}
# A model missing from the list is charged like the dearest listed non-sandbox model.
DEFAULT_MODEL_PRICE: tuple[int, int] = (300, 1500)
TOKENS_PER_PRICE_UNIT = 1_000_000


def model_price(model: str) -> tuple[int, int]:
    """Credits per million (input, output) tokens of ``model``."""
    return MODEL_PRICES.get(model, DEFAULT_MODEL_PRICE)


def model_cost(model: str, input_tokens: int, output_tokens: int) -> int:
    """Platform credits of one answer: its reported tokens at the model's prices, rounded up."""
    per_in, per_out = model_price(model)
    micro = max(0, int(input_tokens)) * per_in + max(0, int(output_tokens)) * per_out
    return -(-micro // TOKENS_PER_PRICE_UNIT)
