"""The PostgreSQL search engine: full text (``simple`` and ``english``) and ``pg_trgm`` over ``search_documents``.

Three direct ways of matching, each an index scan capped at ``cap`` documents and each filtered by
the workspace first: the normalised cell equals the query (btree), some words of the cell are
similar to it (``<%``, word similarity: "acme" in "Acme Corp"), and every query word is a word
prefix (GIN on the tsvector). When they find nothing, the statement runs again with the
similarity scan (``%``: typos), the costly one when the query's trigrams are common. The
trigram ways cover cells of at most 80 characters (their partial index); longer text is found
by its words and prefixes. The union is joined to the workspace's tables and live columns, so a
deleted table or column is never found, even before its documents are purged.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from morket.extensions import db
from morket.search.engine import Filters, Hit, ParsedQuery

SIMILARITY = "0.45"  # ``%``: "ACME Corporation" meets "Acme Corp" (0.5), "acmee corp" too (0.75)
_DOCS = "search_documents d"
_SHORT = "length(d.norm) <= 80"  # the trigram index's predicate
_COLS = "d.table_id, d.row_id, d.column_id, d.value, d.norm, d.states, d.providers"


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _scored(branches: list[str]) -> str:
    """The candidates of ``branches`` (materialised once), joined to live tables and columns, scored."""
    return f"""
        WITH cand AS MATERIALIZED ({" UNION ALL ".join(branches)})
        SELECT c.table_id, c.row_id, c.column_id, c.value, c.states, c.providers,
               greatest(similarity(c.norm, :qn), word_similarity(:qn, c.norm))
               + CASE WHEN c.norm = :qn THEN 1.0 WHEN c.norm LIKE :prefix ESCAPE '\\' THEN 0.5 ELSE 0 END
               + CASE WHEN bool_or(c.ft) THEN 0.25 ELSE 0 END AS score
        FROM cand c
        JOIN tables t ON t.id = c.table_id AND t.workspace_id = :ws
        JOIN table_columns col ON col.id = c.column_id AND col.table_id = c.table_id AND col.deleted_at IS NULL
        GROUP BY c.table_id, c.row_id, c.column_id, c.value, c.norm, c.states, c.providers
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
            f"(SELECT {_COLS}, false AS ft FROM {_DOCS} WHERE {scope} AND {_SHORT} AND :qn <% d.norm LIMIT :cap)",  # noqa: S608
        ]
        if query.tokens:
            params["tsq"] = " & ".join(f"'{t}':*" for t in query.tokens)
            direct.append(
                f"(SELECT {_COLS}, true AS ft FROM {_DOCS} WHERE {scope} "  # noqa: S608
                "AND d.tsv @@ (to_tsquery('simple', :tsq) || to_tsquery('english', :tsq)) LIMIT :cap)"
            )
        typos = f"(SELECT {_COLS}, false AS ft FROM {_DOCS} WHERE {scope} AND {_SHORT} AND d.norm % :qn LIMIT :cap)"  # noqa: S608
        # For this transaction: the ``%`` threshold (pg_trgm's 0.3 lets common trigrams through by
        # the ten thousand), and no sequential scan: with LIMIT, the planner bets a scan finds a
        # prefix's estimated thousands of matches early, and reads the whole index table when the
        # prefix matches six.
        db.session.execute(
            sa.text(
                "SELECT set_config('pg_trgm.similarity_threshold', :s, true), set_config('enable_seqscan', 'off', true)"
            ),
            {"s": SIMILARITY},
        )
        rows = db.session.execute(sa.text(_scored(direct)), params).all()
        if not rows:
            # No direct match: add the similarity scan (typos, "ACME Corporation" for "Acme Corp").
            # It is the costly one when the query's trigrams are common (".com"), so it runs only here.
            rows = db.session.execute(sa.text(_scored([*direct, typos])), params).all()
        return [
            Hit(
                table_id=int(r.table_id),
                row_id=int(r.row_id),
                column_id=int(r.column_id),
                value=r.value,
                score=float(r.score),
                states=tuple(r.states or ()),
                providers=tuple(r.providers or ()),
            )
            for r in rows
        ]
