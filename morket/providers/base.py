"""The contract every data provider adapter meets; the enrichment engine knows nothing else.

An adapter is one module in this package that builds a ``Provider`` and hands it to
``morket.providers.registry.register``. Each provider offers operations (``hunter.email_finder``);
an operation names its inputs and output fields, and ``Provider.call`` turns one row's inputs
into a ``Result`` whose ``outcome`` classifies the answer:

- ``hit``: the provider delivered a value (the only billable outcome);
- ``not_found``: a final "no data" (cached like a hit, never billed);
- ``invalid_input`` / ``auth_error``: final failures (bad input, bad or revoked key), not retried;
- ``retryable``: timeout, connection error or 5xx; retried with backoff;
- ``rate_limited``: 429; retried after ``retry_after`` seconds, and the shared limiter pauses;
- ``pending``: an asynchronous provider accepted the request (Clearbit's 202) and will answer
  on the callback URL with ``callback_id``.

Adapters never log or return the API key, and classify every failure; an exception escaping
``call`` is a bug that the engine records as ``retryable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

Outcome = Literal["hit", "not_found", "invalid_input", "auth_error", "retryable", "rate_limited", "pending"]
FINAL_OUTCOMES: frozenset[str] = frozenset({"hit", "not_found", "invalid_input", "auth_error"})
RETRY_OUTCOMES: frozenset[str] = frozenset({"retryable", "rate_limited"})
# Outcomes kept in the per-workspace cache; transient failures never are.
CACHEABLE_OUTCOMES: frozenset[str] = frozenset({"hit", "not_found"})


@dataclass(frozen=True)
class InputSpec:
    """One input an operation reads from the row (mapped from a column by the user)."""

    name: str
    label: str
    required: bool = True
    # A hint for the mapping form and for normalising: text, domain, email, url, name.
    kind: str = "text"


@dataclass(frozen=True)
class FieldSpec:
    """One output field an operation can deliver, and the column type that holds it."""

    name: str
    label: str
    column_type: str = "text"


@dataclass(frozen=True)
class Operation:
    """One thing a provider can do; ``key`` is ``<provider>.<operation>`` and prices key on it."""

    key: str
    provider: str
    label: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[FieldSpec, ...]
    # A verifier that can serve as a waterfall's validation step (Hunter's email verifier).
    validates: bool = False
    # Answers may arrive later on the callback URL (Clearbit's 202 flow).
    asynchronous: bool = False
    # At least one of these inputs must be present (e.g. a domain or a company name).
    any_of: tuple[str, ...] = ()

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.outputs)


@dataclass
class Result:
    """What one provider call produced; ``values`` maps output field names to plain JSON values."""

    outcome: Outcome
    values: dict[str, Any] = field(default_factory=dict)
    http_status: int | None = None
    retry_after: float | None = None
    message: str | None = None
    callback_id: str | None = None

    @property
    def billable(self) -> bool:
        return self.outcome == "hit"

    @property
    def final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES


@dataclass(frozen=True)
class CallContext:
    """What a call needs besides its inputs: the HTTP client, the key and where to send it."""

    client: httpx.Client
    api_key: str | None
    base_url: str
    timeout: float = 10.0
    # Where an asynchronous provider should post its answer (absolute URL), if any.
    callback_url: str | None = None
    # The id an asynchronous answer must carry (the run row already waits under it), if any.
    callback_id: str | None = None


@dataclass(frozen=True)
class Provider:
    """A data provider: its operations, the setting naming its base URL, its default rate."""

    name: str
    label: str
    operations: tuple[Operation, ...]
    # Real API base URL, used when the MORKET_<NAME>_URL setting is empty.
    default_base_url: str
    # Requests per second the provider allows one key (the shared limiter's default).
    default_rate: float = 10.0
    requires_key: bool = True
    # The MORKET_* settings keys naming the base URL and the platform's own key, if any.
    url_setting: str | None = None
    key_setting: str | None = None

    def operation(self, key: str) -> Operation:
        for op in self.operations:
            if op.key == key:
                return op
        raise KeyError(key)

    def call(
        self, op: Operation, inputs: Mapping[str, Any], ctx: CallContext, options: Mapping[str, Any] | None = None
    ) -> Result:  # pragma: no cover - every adapter overrides
        """Call ``op`` with one row's ``inputs``; ``options`` is the column's per-step config."""
        raise NotImplementedError
