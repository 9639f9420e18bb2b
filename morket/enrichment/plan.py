"""An enrichment run's plan, read once per job: its steps, validation, keys, prices, rates and URLs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from morket.enrichment.config import EnrichmentConfig, read_config
from morket.providers.base import Operation, Provider
from morket.runs.callbacks import BACKOFF_BASE_SECONDS
from morket.runs.jobs import setting, settings
from morket.runs.models import Run


@dataclass
class StepPlan:
    index: int
    operation: Operation
    provider: Provider
    options: dict[str, Any]


@dataclass
class KeyInfo:
    secret: str | None
    source: str  # own | platform | none

    @property
    def limiter_id(self) -> str:
        # The limiter is per provider *and* key: a workspace's own key has its own allowance.
        digest = hashlib.sha256((self.secret or "").encode()).hexdigest()[:12]
        return f"{self.source}:{digest}"


@dataclass
class RunPlan:
    run_id: int
    workspace_id: int
    table_id: int
    column_id: int
    config: EnrichmentConfig
    steps: list[StepPlan]
    validation: Operation | None
    validation_provider: Provider | None
    keys: dict[str, KeyInfo]
    prices: dict[str, int]
    rates: dict[str, float]
    base_urls: dict[str, str]
    cache_ttl: int
    callback_base: str
    backoff_base: float = BACKOFF_BASE_SECONDS

    @property
    def input_column_ids(self) -> list[int]:
        return sorted(set(self.config.inputs.values()))

    @property
    def own_providers(self) -> set[str]:
        """Providers this run reaches with the workspace's own key (their parts cost no credits)."""
        return {name for name, key in self.keys.items() if key.source == "own"}

    def value_price(self, step: StepPlan) -> int:
        """Credits a value delivered by ``step`` costs (``credits.prices.delivery_price``)."""
        from morket.credits.prices import delivery_price

        validation = self.validation.key if self.validation is not None else None
        return delivery_price(step.operation.key, validation, own=self.own_providers)

    @property
    def min_balance(self) -> int:
        """The balance below which a delivered value cannot be paid for (the dearest one)."""
        return max((self.value_price(s) for s in self.steps), default=0)

    @property
    def needs_credits(self) -> bool:
        return self.min_balance > 0


def _price(operation_key: str) -> int:
    from morket.credits.prices import price

    return int(price(operation_key))


def build_plan(run: Run, *, resolve_keys: bool = True) -> RunPlan:
    """Read the run's configuration, its operations and (once per job) the keys it calls with."""
    from morket.providers import http_request, registry

    config = read_config(run.config)
    steps = []
    for index, step in enumerate(config.steps):
        op = registry.get_operation(step.operation)
        steps.append(StepPlan(index, op, registry.get_provider(op.provider), dict(step.options)))
    validation = validation_provider = None
    if config.validation is not None:
        validation = registry.get_operation(config.validation.operation)
        validation_provider = registry.get_provider(validation.provider)
    providers = {s.provider.name: s.provider for s in steps}
    if validation_provider is not None:
        providers[validation_provider.name] = validation_provider
    keys: dict[str, KeyInfo] = {}
    # A generic HTTP step whose headers send the stored HTTP API key needs it resolved like a provider's.
    wants_key = {
        s.provider.name for s in steps if s.operation.key == "http.request" and http_request.uses_key(s.options)
    }
    for name, provider in providers.items():
        if not provider.requires_key and name not in wants_key:
            keys[name] = KeyInfo(None, "none")
        elif resolve_keys:
            from morket.credentials.service import resolve_key

            secret, source = resolve_key(run.workspace_id, name, actor_id=run.created_by_id, run_id=run.id)
            keys[name] = KeyInfo(secret, source)
        else:
            keys[name] = KeyInfo(None, "platform")
    op_keys = [s.operation.key for s in steps] + ([validation.key] if validation else [])
    rates = registry.default_rates(settings())
    base = str(setting("BASE_URL", "http://127.0.0.1:5000")).rstrip("/")
    return RunPlan(
        run_id=run.id,
        workspace_id=run.workspace_id,
        table_id=run.table_id,
        column_id=run.column_id,
        config=config,
        steps=steps,
        validation=validation,
        validation_provider=validation_provider,
        keys=keys,
        prices={key: _price(key) for key in op_keys},
        rates={name: float(rates.get(name, p.default_rate)) for name, p in providers.items()},
        base_urls={name: registry.base_url(p, settings()) for name, p in providers.items()},
        cache_ttl=int(setting("ENRICHMENT_CACHE_TTL", 2592000)),
        callback_base=f"{base}/api/v1/enrichment/callbacks",
        backoff_base=float(setting("ENRICHMENT_BACKOFF_SECONDS", BACKOFF_BASE_SECONDS)),
    )
