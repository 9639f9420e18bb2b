"""The per-workspace cache of provider answers: hits and final not-founds, never transient errors.

An entry is keyed by the operation and a hash of its normalised inputs and options, so two rows
(or two runs, or two tables) of one workspace asking the same question pay for it once. Entries
never cross workspaces: one workspace's paid-for answers, or its own key's answers, are not
another's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from morket.core.db import utcnow
from morket.enrichment.models import EnrichmentCacheEntry
from morket.extensions import db
from morket.providers.base import CACHEABLE_OUTCOMES

CacheKey = tuple[str, str]  # (operation, input hash)


@dataclass(frozen=True)
class CachedAnswer:
    """A provider's cached final answer."""

    outcome: str
    values: dict[str, Any]


def _normal(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower()
    return value


def input_hash(operation: str, inputs: Mapping[str, Any], options: Mapping[str, Any] | None = None) -> str:
    """Hash what decides a provider's answer: the operation, its inputs (case-folded) and options."""
    payload = {
        "op": operation,
        "in": {k: _normal(v) for k, v in sorted(inputs.items()) if v not in (None, "")},
        "opt": options or {},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def lookup_many(workspace_id: int, keys: Iterable[CacheKey]) -> dict[CacheKey, CachedAnswer]:
    """Return the live entries among ``keys`` in one query."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    # The keys as two arrays joined to the table: one primary-key probe per key whatever the
    # table's statistics say (with stale statistics an `input_hash = ANY(...)` became a filter over
    # every entry of the workspace), and a statement whose text never changes.
    rows = db.session.execute(
        _LOOKUP,
        {"workspace_id": workspace_id, "operation": [op for op, _ in wanted], "input_hash": [h for _, h in wanted]},
    )
    return {(r.operation, r.input_hash): CachedAnswer(r.outcome, r[3] or {}) for r in rows}


_LOOKUP = sa.text(
    'SELECT c.operation, c.input_hash, c.outcome, c."values"'
    " FROM unnest(CAST(:operation AS text[]), CAST(:input_hash AS text[])) AS k(operation, input_hash)"
    " JOIN enrichment_cache AS c ON c.workspace_id = :workspace_id AND c.operation = k.operation"
    " AND c.input_hash = k.input_hash"
    " WHERE c.expires_at > clock_timestamp()"
)


def lookup_one(connection: sa.Connection, workspace_id: int, key: CacheKey) -> CachedAnswer | None:
    """Look one entry up on ``connection`` (for callers outside the request's session, e.g. threads)."""
    table = EnrichmentCacheEntry.__table__
    row = connection.execute(
        sa.select(table.c.outcome, table.c["values"]).where(
            table.c.workspace_id == workspace_id,
            table.c.operation == key[0],
            table.c.input_hash == key[1],
            table.c.expires_at > sa.func.clock_timestamp(),
        )
    ).first()
    return None if row is None else CachedAnswer(row.outcome, row[1] or {})


def store_many(workspace_id: int, answers: Mapping[CacheKey, CachedAnswer], ttl_seconds: int) -> int:
    """Upsert final answers (hit, not_found) in the caller's transaction; others are ignored."""
    expires: datetime = utcnow() + timedelta(seconds=max(int(ttl_seconds), 0))
    entries = [(key, answer) for key, answer in sorted(answers.items()) if answer.outcome in CACHEABLE_OUTCOMES]
    if not entries or ttl_seconds <= 0:
        return 0
    # Arrays in one statement whose text never changes (a multi-row VALUES is compiled per batch).
    db.session.execute(
        _UPSERT,
        {
            "workspace_id": workspace_id,
            "expires_at": expires,
            "operation": [key[0] for key, _ in entries],
            "input_hash": [key[1] for key, _ in entries],
            "outcome": [answer.outcome for _, answer in entries],
            "values": [json.dumps(answer.values or {}) for _, answer in entries],
        },
    )
    return len(entries)


_UPSERT = sa.text(
    'INSERT INTO enrichment_cache (workspace_id, operation, input_hash, outcome, "values", expires_at)'
    " SELECT :workspace_id, v.operation, v.input_hash, v.outcome, v.vals::jsonb, :expires_at"
    " FROM unnest(CAST(:operation AS text[]), CAST(:input_hash AS text[]), CAST(:outcome AS text[]),"
    " CAST(:values AS text[])) AS v(operation, input_hash, outcome, vals)"
    " ON CONFLICT ON CONSTRAINT pk_enrichment_cache DO UPDATE"
    ' SET outcome = excluded.outcome, "values" = excluded."values", expires_at = excluded.expires_at'
)


def purge_expired(limit: int = 10_000) -> int:
    """Delete up to ``limit`` expired entries; return how many."""
    table = EnrichmentCacheEntry.__table__
    victims = (
        sa.select(table.c.workspace_id, table.c.operation, table.c.input_hash)
        .where(table.c.expires_at <= sa.func.clock_timestamp())
        .limit(limit)
    )
    result = db.session.execute(
        sa.delete(table).where(sa.tuple_(table.c.workspace_id, table.c.operation, table.c.input_hash).in_(victims))
    )
    return result.rowcount or 0
