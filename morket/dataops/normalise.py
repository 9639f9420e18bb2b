"""The SQL normaliser of dedupe keys lives in ``morket.core.normalise``, shared with lookup columns."""

from __future__ import annotations

from morket.core.normalise import MATCH_KINDS, normalised_sql

__all__ = ["MATCH_KINDS", "normalised_sql"]
