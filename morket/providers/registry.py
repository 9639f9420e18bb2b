"""Find the provider adapters and answer "which provider and operation is this key?".

Adding a provider is adding one module to this package: the registry imports every module of
``morket.providers`` except ``base``, ``registry``, the ``sandboxes`` package and private
``_helpers``, and each module hands its ``Provider`` to ``register``. Discovery runs once, on
the first lookup, so importing the package stays cheap and has no order to get wrong.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Mapping
from typing import Any

from morket.providers.base import Operation, Provider

PACKAGE = "morket.providers"
SKIPPED_MODULES = frozenset({"base", "registry", "sandboxes"})

_providers: dict[str, Provider] = {}
_operations: dict[str, Operation] = {}
_discovered = False
_lock = threading.RLock()


class UnknownProvider(KeyError):
    """No provider (or operation) by that name; the message names it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown provider"


def register(provider: Provider) -> Provider:
    """Add ``provider`` and its operations; a second provider under one name is a bug."""
    with _lock:
        existing = _providers.get(provider.name)
        if existing is not None and existing is not provider:
            raise ValueError(f"provider {provider.name!r} is registered twice")
        for op in provider.operations:
            if op.provider != provider.name or not op.key.startswith(provider.name + "."):
                raise ValueError(f"operation {op.key!r} does not belong to provider {provider.name!r}")
            other = _operations.get(op.key)
            if other is not None and other is not op:
                raise ValueError(f"operation {op.key!r} is registered twice")
        _providers[provider.name] = provider
        for op in provider.operations:
            _operations[op.key] = op
    return provider


def discover() -> None:
    """Import every adapter module of the package (once)."""
    global _discovered
    with _lock:
        if _discovered:
            return
        package = importlib.import_module(PACKAGE)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.name in SKIPPED_MODULES or info.name.startswith("_"):
                continue
            importlib.import_module(f"{PACKAGE}.{info.name}")
        _discovered = True


def rediscover() -> None:
    """Forget what was found and look again (a module added to the package's path shows up)."""
    global _discovered
    with _lock:
        _providers.clear()
        _operations.clear()
        _discovered = False
        import sys

        for name in [m for m in sys.modules if m.startswith(PACKAGE + ".")]:
            short = name[len(PACKAGE) + 1 :]
            if "." in short or short in SKIPPED_MODULES or short.startswith("_"):
                continue
            # Re-running the module registers its provider again.
            del sys.modules[name]
    discover()


def get_provider(name: str) -> Provider:
    """The provider called ``name``; ``UnknownProvider`` when there is none."""
    discover()
    try:
        return _providers[name]
    except KeyError:
        raise UnknownProvider(f"unknown provider {name!r}") from None


def get_operation(key: str) -> Operation:
    """The operation ``<provider>.<operation>``; ``UnknownProvider`` when there is none."""
    discover()
    try:
        return _operations[key]
    except KeyError:
        raise UnknownProvider(f"unknown operation {key!r}") from None


def provider_for(key: str) -> Provider:
    """The provider offering operation ``key``."""
    return get_provider(get_operation(key).provider)


def all_providers() -> list[Provider]:
    """Every provider, by name."""
    discover()
    return [_providers[name] for name in sorted(_providers)]


def all_operations() -> list[Operation]:
    """Every operation of every provider, by key."""
    discover()
    return [_operations[key] for key in sorted(_operations)]


def _settings(config: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if config is not None:
        return config
    from flask import current_app

    return current_app.config["MORKET"]


def base_url(provider: Provider, config: Mapping[str, Any] | None = None) -> str:
    """The provider's base URL: its MORKET_<NAME>_URL setting when set, else the real API's."""
    configured = _settings(config).get(provider.url_setting) if provider.url_setting else None
    return (configured or provider.default_base_url).rstrip("/")


def platform_key(provider: Provider, config: Mapping[str, Any] | None = None) -> str | None:
    """The platform's own key for ``provider`` (MORKET_<NAME>_API_KEY), or None when unset."""
    if not provider.key_setting:
        return None
    return _settings(config).get(provider.key_setting) or None


def default_rates(config: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Requests per second per provider: PROVIDER_RATES ("hunter=15,apollo=50") over each default."""
    rates = {p.name: p.default_rate for p in all_providers()}
    raw = _settings(config).get("PROVIDER_RATES") or []
    items = raw.split(",") if isinstance(raw, str) else raw
    for item in items:
        name, sep, value = str(item).partition("=")
        if not sep:
            continue
        try:
            rates[name.strip()] = float(value)
        except ValueError:
            continue
    return rates
