"""The enrichment catalogue: every provider operation and preset waterfall as a card to pick from.

A card says what it needs (the inputs, and which of them are enough), what it returns, what one
delivered value costs this workspace (``credits.prices.delivery_price``: the step's price plus the
validation's, parts on the workspace's own keys free), whether the workspace has a key of its own for
each provider, and how the operation has done for this workspace lately (hit rate and latency, from
the attempt log). ``build_cards`` is pure; the statistics and the own keys are read by
``panel_service`` and passed in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from morket.credits.prices import delivery_price
from morket.providers.base import FieldSpec, InputSpec, Operation

CATEGORIES: dict[str, str] = {
    "people": "People",
    "companies": "Companies",
    "emails": "Emails",
    "phones": "Phones",
    "websites": "Websites",
}
# Which categories each operation belongs to; an operation not named here is listed under none.
OPERATION_CATEGORIES: dict[str, tuple[str, ...]] = {
    "hunter.email_finder": ("people", "emails"),
    "hunter.domain_search": ("emails", "companies"),
    "hunter.email_verifier": ("emails",),
    "apollo.people_match": ("people", "emails"),
    "apollo.organization_enrich": ("companies",),
    "clearbit.person": ("people",),
    "clearbit.company": ("companies",),
    "clearbit.combined": ("people", "companies"),
    "website.scrape": ("websites", "companies", "phones", "emails"),
    "http.request": ("websites",),
}
# Starting points: waterfalls of several providers for one value, validated where that matters.
PRESETS: dict[str, dict[str, Any]] = {
    "email_waterfall": {
        "title": "Work email",
        "label": "Work email waterfall (Hunter, then Apollo, verified by Hunter)",
        "summary": "A person's work email: Hunter's finder, then Apollo; each address verified by Hunter.",
        "name": "Work email",
        "steps": ["hunter.email_finder", "apollo.people_match"],
        "target": "email",
        "validation": "hunter.email_verifier",
        "categories": ("people", "emails"),
    },
    "company": {
        "title": "Company profile",
        "label": "Company profile (Apollo, then Clearbit)",
        "summary": "A company's name, industry, size and location from its domain: Apollo, then Clearbit.",
        "name": "Company",
        "steps": ["apollo.organization_enrich", "clearbit.company"],
        "target": "name",
        "validation": "",
        "categories": ("companies",),
    },
}
# The field an operation's card is after when it is picked alone (default: its first output).
OPERATION_TARGETS: dict[str, str] = {"hunter.domain_search": "emails", "hunter.email_verifier": "status"}


@dataclass(frozen=True)
class Stats:
    """How an operation did for this workspace lately: calls answered, values found, mean latency."""

    answered: int = 0
    hits: int = 0
    latency_ms: int | None = None

    @property
    def hit_rate(self) -> int | None:
        """Percent of final answers that found a value, or None before any."""
        return round(100 * self.hits / self.answered) if self.answered else None


@dataclass(frozen=True)
class Card:
    """One choice in the catalogue: a single operation or a preset waterfall."""

    key: str  # "op:hunter.email_finder" or "preset:email_waterfall"
    title: str
    summary: str
    categories: tuple[str, ...]
    steps: tuple[Operation, ...]
    validation: Operation | None
    target: str
    name: str
    price_low: int
    price_high: int
    providers: tuple[str, ...]
    own_keys: tuple[str, ...]
    stats: Stats
    needs: tuple[InputSpec, ...]
    any_of: tuple[str, ...] = ()
    returns: tuple[FieldSpec, ...] = field(default_factory=tuple)

    @property
    def price(self) -> str:
        """Credits per delivered value: "3", or "1–3" when the steps are priced differently."""
        return str(self.price_low) if self.price_low == self.price_high else f"{self.price_low}–{self.price_high}"

    @property
    def target_field(self) -> FieldSpec | None:
        for spec in self.returns:
            if spec.name == self.target:
                return spec
        return None

    @property
    def dom_id(self) -> str:
        return "card-" + self.key.replace(":", "-").replace(".", "-").replace("_", "-")


def _needs(steps: Sequence[Operation]) -> tuple[tuple[InputSpec, ...], tuple[str, ...]]:
    """The inputs of every step, each once; required only when every step that reads it requires it."""
    found: dict[str, InputSpec] = {}
    any_of: list[str] = []
    for op in steps:
        for spec in op.inputs:
            if spec.name not in found:
                found[spec.name] = spec
        for name in op.any_of:
            if name not in any_of:
                any_of.append(name)
    return tuple(found.values()), tuple(any_of)


def _returns(steps: Sequence[Operation], target: str) -> tuple[FieldSpec, ...]:
    """The fields the card returns: the target first, then every other field of any step, once."""
    found: dict[str, FieldSpec] = {}
    for op in steps:
        for spec in op.outputs:
            found.setdefault(spec.name, spec)
    ordered = [found[target]] if target in found else []
    return tuple(ordered + [spec for name, spec in found.items() if name != target])


def _stats(keys: Sequence[str], stats: Mapping[str, Stats]) -> Stats:
    answered = sum(stats[k].answered for k in keys if k in stats)
    hits = sum(stats[k].hits for k in keys if k in stats)
    latencies = [stats[k].latency_ms for k in keys if k in stats and stats[k].latency_ms is not None]
    return Stats(answered, hits, round(sum(latencies) / len(latencies)) if latencies else None)


def _card(
    key: str,
    title: str,
    summary: str,
    categories: tuple[str, ...],
    steps: list[Operation],
    validation: Operation | None,
    target: str,
    name: str,
    own: set[str],
    stats: Mapping[str, Stats],
) -> Card:
    prices = [delivery_price(op.key, validation.key if validation else None, own=own) for op in steps]
    providers = tuple(dict.fromkeys([op.provider for op in steps] + ([validation.provider] if validation else [])))
    needs, any_of = _needs(steps)
    return Card(
        key=key,
        title=title,
        summary=summary,
        categories=categories,
        steps=tuple(steps),
        validation=validation,
        target=target,
        name=name,
        price_low=min(prices),
        price_high=max(prices),
        providers=providers,
        own_keys=tuple(p for p in providers if p in own),
        stats=_stats([op.key for op in steps], stats),
        needs=needs,
        any_of=any_of,
        returns=_returns(steps, target),
    )


def build_cards(
    operations: Sequence[Operation], *, own: set[str] | None = None, stats: Mapping[str, Stats] | None = None
) -> list[Card]:
    """Every card: the presets first, then each operation (the generic HTTP call last)."""
    own = own or set()
    stats = stats or {}
    by_key = {op.key: op for op in operations}
    cards: list[Card] = []
    for key, preset in PRESETS.items():
        steps = [by_key[k] for k in preset["steps"] if k in by_key]
        if not steps:
            continue
        validation = by_key.get(preset["validation"]) if preset["validation"] else None
        cards.append(
            _card(
                f"preset:{key}",
                preset["title"],
                preset["summary"],
                preset["categories"],
                steps,
                validation,
                preset["target"],
                preset["name"],
                own,
                stats,
            )
        )
    ordered = sorted(operations, key=lambda op: (op.key == "http.request", op.label))
    for op in ordered:
        target = OPERATION_TARGETS.get(op.key) or (op.outputs[0].name if op.outputs else "")
        provider, _, what = op.label.partition(": ")
        title = what[:1].upper() + what[1:] if what else op.label
        cards.append(
            _card(
                f"op:{op.key}",
                title,
                f"{provider}: {what}" if what else op.label,
                OPERATION_CATEGORIES.get(op.key, ()),
                [op],
                None,
                target,
                title,
                own,
                stats,
            )
        )
    return cards


def find_card(cards: Sequence[Card], key: str) -> Card | None:
    """The card ``key`` ("op:…" or "preset:…"), or None."""
    return next((c for c in cards if c.key == key), None)


def filter_cards(cards: Sequence[Card], query: str = "", category: str = "") -> list[Card]:
    """The cards of ``category`` (all when blank) whose title, summary, inputs or fields match every word."""
    words = [w for w in query.casefold().split() if w]
    found = []
    for card in cards:
        if category and category not in card.categories:
            continue
        text = " ".join(
            [card.title, card.summary, *card.providers]
            + [s.label for s in card.needs]
            + [s.label for s in card.returns]
            + [CATEGORIES.get(c, c) for c in card.categories]
        ).casefold()
        if all(w in text for w in words):
            found.append(card)
    return found
