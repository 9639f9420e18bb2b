"""The PostgreSQL search engine: full text (``simple`` and ``english``) and ``pg_trgm`` over ``search_documents``.

Three direct ways of matching, each an index scan capped at ``cap`` documents and each filtered by
the workspace first: the normalised cell equals the query (btree), some words of the cell are
similar to it (``<%``, word similarity: "acme" in "Acme Corp"), and every query word is a word
prefix (GIN on the tsvector). When they find nothing, the similarity scan (``%``: typos), the
costly one when the query's trigrams are common, runs in the same statement: it sits behind a
one-time filter (``NOT EXISTS`` over the direct matches), so it is never started when they found
something. The trigram ways cover cells of at most 80 characters, through their distinct values
(``search_terms``: narrow rows, each value once however many cells hold it); longer text is
found by its words and prefixes. The candidates are joined to the workspace's tables and
live columns (a deleted table or column is never found, even before its documents are purged),
whose names come back with each hit, so a search is one statement after the transaction's settings.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from morket.core.errors import MorketError
from morket.extensions import db
from morket.search.engine import Filters, Hit, ParsedQuery

STATEMENT_TIMEOUT_MS = 5000  # a search that runs longer is stopped and answered, never left to run


class SearchTooSlow(MorketError):
    status = 503
    code = "search_timeout"


SCANNED_PREFIX = 3  # shorter query words are checked on the candidates, not looked up in the index
SIMILARITY = "0.45"  # ``%``: "ACME Corporation" meets "Acme Corp" (0.5), "acmee corp" too (0.75)
_DOCS = "search_documents d"
# The trigram ways scan the workspace's distinct short values (a bitmap of the trigram index), then
# fetch the documents holding each found value through the (workspace_id, norm) btree; the LIMIT
# stops that nested loop early. ``+ 0`` keeps the terms' primary key out of it: given the
# workspace, the planner bet on walking all its terms in order, filtering each by similarity
# ("tyrel": 19,000 terms read, 260 ms, for 200 matches).
TERMS_CAP = 1000  # distinct values a trigram way reads before it fetches their documents


def _terms(match: str) -> str:
    """Documents holding the workspace's distinct short values that ``match`` (a predicate on ``s.norm``).

    The values are found first, capped, in an array built once (an InitPlan: a bitmap of the terms'
    trigram index, ``+ 0`` keeping the terms' primary key out of it), and the documents are then
    read through the (workspace_id, norm) btree by ``norm = ANY``. Written as a join, statistics
    that lagged a bulk index (a new 20,000-row table, one table's facet) let the planner rescan
    every term once per document of the table, for minutes.
    """
    return (
        f"{_DOCS} WHERE d.norm = ANY(ARRAY(SELECT s.norm FROM search_terms s "  # noqa: S608
        f"WHERE s.workspace_id + 0 = :ws AND {match} LIMIT {TERMS_CAP}))"
    )


_COLS = "d.table_id, d.row_id, d.column_id, d.value, d.norm, d.states, d.providers"


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_LIVE = """
    JOIN tables t ON t.id = c.table_id AND t.workspace_id = :ws
    JOIN table_columns col ON col.id = c.column_id AND col.table_id = c.table_id AND col.deleted_at IS NULL
"""


def _scored(direct: list[str], typos: str) -> str:
    """The direct candidates, else the typo candidates, joined to live tables and columns, scored.

    ``direct`` is materialised once (inlined, the planner ran the union once per live column).
    ``typos`` runs only when no direct candidate is live: its ``NOT EXISTS`` is uncorrelated, so
    PostgreSQL evaluates it once, as a one-time filter above the trigram scan, before starting it.
    """
    return f"""
        WITH direct AS MATERIALIZED ({" UNION ALL ".join(direct)}),
        typos AS MATERIALIZED (
            SELECT * FROM {typos} x WHERE NOT EXISTS (SELECT 1 FROM direct c {_LIVE})
        ),
        cand AS (SELECT * FROM direct UNION ALL SELECT * FROM typos)
        SELECT c.table_id, c.row_id, c.column_id, c.value, c.states, c.providers,
               t.name AS table_name, col.name AS column_name,
               greatest(similarity(c.norm, :qn), word_similarity(:qn, c.norm))
               + CASE WHEN c.norm = :qn THEN 1.0 WHEN c.norm LIKE :prefix ESCAPE '\\' THEN 0.5 ELSE 0 END
               + CASE WHEN bool_or(c.ft) THEN 0.25 ELSE 0 END AS score
        FROM cand c
        {_LIVE}
        GROUP BY c.table_id, c.row_id, c.column_id, c.value, c.norm, c.states, c.providers, t.name, col.name
    """  # noqa: S608 - fixed SQL formatted in; every value is a bound parameter


class PostgresEngine:
    name = "postgres"

    def find(self, workspace_id: int, query: ParsedQuery, filters: Filters, cap: int) -> list[Hit]:
        if not query.norm:
            return []
        params: dict[str, Any] = {
            "ws": int(workspace_id),
            "qn": query.norm,
            "prefix": _like_prefix(query.norm),
            "cap": int(cap),
        }
        where = ["d.workspace_id = :ws"]
        if filters.table_ids:
            where.append("d.table_id = ANY(:f_tables)")
            params["f_tables"] = list(filters.table_ids)
        if filters.column_ids:
            where.append("d.column_id = ANY(:f_columns)")
            params["f_columns"] = list(filters.column_ids)
        if filters.states:
            where.append("d.states && CAST(:f_states AS text[])")
            params["f_states"] = list(filters.states)
        if filters.providers:
            where.append("d.providers && CAST(:f_providers AS text[])")
            params["f_providers"] = list(filters.providers)
        scope = " AND ".join(where)
        direct = [
            f"(SELECT {_COLS}, false AS ft FROM {_DOCS} WHERE {scope} AND d.norm = :qn LIMIT :cap)",  # noqa: S608
            f"(SELECT {_COLS}, false AS ft FROM {_terms(':qn <% s.norm')} AND {scope} LIMIT :cap)",  # noqa: S608
        ]
        if query.tokens:
            params["tsq"] = " & ".join(f"'{t}':*" for t in query.tokens)
            words = "d.tsv @@ (to_tsquery('simple', :tsq) || to_tsquery('english', :tsq))"
            scanned = [t for t in query.tokens if len(t) >= SCANNED_PREFIX]
            if scanned and len(scanned) < len(query.tokens):
                # "acme c": the index reads the longer words' prefixes, and the short ones ("c":* is
                # every word starting with c, 100 ms of posting lists at 100,000 rows) are checked on
                # those candidates only (``ts_match_vq`` is ``@@`` that no index takes).
                params["tsq_scan"] = " & ".join(f"'{t}':*" for t in scanned)
                words = (
                    "d.tsv @@ (to_tsquery('simple', :tsq_scan) || to_tsquery('english', :tsq_scan)) "
                    "AND ts_match_vq(d.tsv, to_tsquery('simple', :tsq) || to_tsquery('english', :tsq))"
                )
            direct.append(f"(SELECT {_COLS}, true AS ft FROM {_DOCS} WHERE {scope} AND {words} LIMIT :cap)")  # noqa: S608
        # No direct match: the similarity scan (typos, "ACME Corporation" for "Acme Corp").
        typos = f"(SELECT {_COLS}, false AS ft FROM {_terms('s.norm % :qn')} AND {scope} LIMIT :cap)"  # noqa: S608
        # For this transaction: the ``%`` threshold (pg_trgm's 0.3 lets common trigrams through by
        # the ten thousand), and no sequential scan: with LIMIT, the planner bets a scan finds a
        # prefix's estimated thousands of matches early, and reads the whole index table when the
        # prefix matches six (measured again without it: "acm" 470 ms, "umbrela" 600 ms at 100,000 rows).
        db.session.execute(
            sa.text(
                "SELECT set_config('pg_trgm.similarity_threshold', :s, true),"
                " set_config('enable_seqscan', 'off', true), set_config('statement_timeout', :timeout, true)"
            ),
            {"s": SIMILARITY, "timeout": str(STATEMENT_TIMEOUT_MS)},
        )
        try:
            with db.session.begin_nested():
                rows = db.session.execute(sa.text(_scored(direct, typos)), params).all()
        except sa.exc.OperationalError as exc:
            if getattr(exc.orig, "sqlstate", None) != "57014":  # query_canceled
                raise
            raise SearchTooSlow("This search took too long and was stopped; add a word or pick a table.") from None
        return [
            Hit(
                table_id=int(r.table_id),
                row_id=int(r.row_id),
                column_id=int(r.column_id),
                value=r.value,
                score=float(r.score),
                states=tuple(r.states or ()),
                providers=tuple(r.providers or ()),
                table_name=r.table_name,
                column_name=r.column_name,
            )
            for r in rows
        ]
