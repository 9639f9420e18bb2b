"""What each billable provider hit costs, in platform credits: the one place prices are set.

Prices key on the operation key (``<provider>.<operation>``, see morket/providers/base.py), so the
engine charges ``price(operation.key)`` per hit and the credits page shows the same figure. A hit
made with the workspace's own provider key costs nothing here; see ``service.charge``.
"""

from __future__ import annotations

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
    "website.scrape": 1,
}


def price(operation_key: str) -> int:
    """Return the credits one billable hit of ``operation_key`` costs (0 for an unpriced operation)."""
    return PRICES.get(operation_key, 0)
