"""The OpenSearch engine: the same protocol as ``postgres``, through opensearch-py.

Chosen by ``service.engine()`` when ``MORKET_OPENSEARCH_URL`` is set. One index per environment
(``morket-<env>-search``), every document routed by its workspace (``_routing`` is required by the
mapping, so a document cannot be written without it), and every query filtered by the workspace
and sent with the same routing: ``search_body`` and ``routing`` are the only way a query is built.

The index mirrors ``search_documents`` (``push_rows``/``push_table`` after each sync), which stays the
source of truth: hits OpenSearch returns are confirmed against it (same workspace, live table and
column), so a deleted row, column or table is never shown even if the mirror lags, and the text
and facets shown are the current ones. OpenSearch finds the candidates (its analyzers, fuzzy and
as-you-type matching); their scores are the rule written on ``engine.Hit``, computed in that same
confirming statement with the PostgreSQL engine's expression, so both engines rank alike; the
typo way counts only when nothing matched directly, as in PostgreSQL.

Request bodies are built by pure functions so the tests validate them against the OpenSearch API
specification; the adapter is contract-tested and replayed through opensearch-py's transport here,
and run against a real cluster in CI (see docs/ARCHITECTURE.md, Search).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import closing
from typing import Any

import sqlalchemy as sa

from morket.core.errors import MorketError
from morket.extensions import db
from morket.search.engine import COMPANY_WORDS, Filters, Hit, ParsedQuery
from morket.search.postgres import (
    SIMILARITY,
    _completions,
    _lexeme,
    _like_prefix,
    norm_match,
    split_tokens,
    typo_groups,
    uses_words,
)

log = logging.getLogger(__name__)

BULK_DOCS = 2000  # documents per _bulk request
_FIELDS = ["workspace_id", "table_id", "row_id", "column_id", "value", "norm", "states", "providers"]


class SearchUnavailable(MorketError):
    status = 503
    code = "search_unavailable"


# --- names -------------------------------------------------------------------------------------


def index_name(env: str) -> str:
    """One index per environment: development, test and production never share documents."""
    return f"morket-{re.sub(r'[^a-z0-9-]', '-', env.lower())}-search"


def routing(workspace_id: int) -> str:
    """The shard routing of a workspace: its documents live together, its queries ask only there."""
    return str(int(workspace_id))


def doc_id(table_id: int, row_id: int, column_id: int) -> str:
    return f"{int(table_id)}:{int(row_id)}:{int(column_id)}"


# --- request bodies (pure) ---------------------------------------------------------------------


def index_body(shards: int = 1) -> dict[str, Any]:
    """Settings and mappings: analyzers for names (company words short), emails and domains; a
    ``search_as_you_type`` field for prefixes; keywords for the exact form and the facets."""
    synonyms = [f"{long} => {short}" for long, short in COMPANY_WORDS.items()]
    return {
        "settings": {
            "index": {"number_of_shards": shards, "number_of_replicas": 0},
            "analysis": {
                "filter": {"morket_company": {"type": "synonym", "synonyms": synonyms}},
                "tokenizer": {"morket_domain": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}},
                "normalizer": {"morket_norm": {"type": "custom", "filter": ["lowercase"]}},
                "analyzer": {
                    "morket_name": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["lowercase", "asciifolding", "morket_company"],
                    },
                    "morket_email": {"type": "custom", "tokenizer": "uax_url_email", "filter": ["lowercase"]},
                    "morket_domain": {"type": "custom", "tokenizer": "morket_domain", "filter": ["lowercase"]},
                },
            },
        },
        "mappings": {
            "dynamic": "strict",
            "_routing": {"required": True},
            "properties": {
                "workspace_id": {"type": "long"},
                "table_id": {"type": "long"},
                "row_id": {"type": "long"},
                "column_id": {"type": "long"},
                "value": {
                    "type": "text",
                    "analyzer": "morket_name",
                    "fields": {
                        "sayt": {"type": "search_as_you_type", "analyzer": "morket_name"},
                        "email": {"type": "text", "analyzer": "morket_email"},
                        "domain": {"type": "text", "analyzer": "morket_domain"},
                    },
                },
                "norm": {"type": "keyword", "normalizer": "morket_norm", "ignore_above": 256},
                "states": {"type": "keyword"},
                "providers": {"type": "keyword"},
            },
        },
    }


def scope_filter(workspace_id: int, filters: Filters = Filters()) -> list[dict[str, Any]]:
    """The workspace term first, then the facet filters: every query of this module starts here."""
    clauses: list[dict[str, Any]] = [{"term": {"workspace_id": int(workspace_id)}}]
    if filters.table_ids:
        clauses.append({"terms": {"table_id": [int(t) for t in filters.table_ids]}})
    if filters.column_ids:
        clauses.append({"terms": {"column_id": [int(c) for c in filters.column_ids]}})
    if filters.states:
        clauses.append({"terms": {"states": list(filters.states)}})
    if filters.providers:
        clauses.append({"terms": {"providers": list(filters.providers)}})
    return clauses


def search_body(workspace_id: int, query: ParsedQuery, filters: Filters, cap: int) -> dict[str, Any]:
    """One request for every way of matching: the exact form, its prefix, word prefixes as you
    type, and a fuzzy ``multi_match`` over the name, email and domain analyses (typos)."""
    should: list[dict[str, Any]] = [
        {"term": {"norm": {"value": query.norm, "boost": 4.0}}},
        {"prefix": {"norm": {"value": query.norm, "boost": 2.0}}},
        {
            "multi_match": {
                "query": query.norm,
                "type": "bool_prefix",
                "fields": ["value.sayt", "value.sayt._2gram", "value.sayt._3gram"],
                "operator": "and",
            }
        },
        {
            "multi_match": {
                "query": query.norm,
                "type": "best_fields",
                "fields": ["value", "value.email", "value.domain"],
                "fuzziness": "AUTO",
                "prefix_length": 1,
                "max_expansions": 50,
                "operator": "and",
            }
        },
    ]
    return {
        "size": int(cap) * 3,  # three direct ways of ``cap`` each in PostgreSQL; one request here
        "track_total_hits": False,
        "_source": _FIELDS,
        "query": {"bool": {"filter": scope_filter(workspace_id, filters), "should": should, "minimum_should_match": 1}},
    }


def rows_query(workspace_id: int, table_id: int, row_ids: Iterable[int] | None = None) -> dict[str, Any]:
    """A ``delete_by_query`` body for a table's documents (some rows, or all), inside the workspace."""
    clauses = [*scope_filter(workspace_id), {"term": {"table_id": int(table_id)}}]
    if row_ids is not None:
        clauses.append({"terms": {"row_id": [int(r) for r in row_ids]}})
    return {"query": {"bool": {"filter": clauses}}}


def bulk_lines(index: str, docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``_bulk`` body: an ``index`` action routed by the document's workspace, then the document."""
    lines: list[dict[str, Any]] = []
    for doc in docs:
        action = {
            "_index": index,
            "_id": doc_id(doc["table_id"], doc["row_id"], doc["column_id"]),
            "routing": routing(doc["workspace_id"]),
        }
        lines.append({"index": action})
        lines.append({k: doc[k] for k in _FIELDS})
    return lines


# --- the engine --------------------------------------------------------------------------------


def client(url: str):
    """An opensearch-py client for ``url`` (credentials may be in the URL), short timeouts, two retries."""
    from opensearchpy import OpenSearch

    return OpenSearch(hosts=[url], timeout=5, max_retries=2, retry_on_timeout=True, http_compress=False)


class OpenSearchEngine:
    name = "opensearch"

    def __init__(self, url: str, env: str, *, os_client: Any = None) -> None:
        self.url = url
        self.index = index_name(env)
        self.client = os_client if os_client is not None else client(url)

    # reading ------------------------------------------------------------------------------------

    def find(self, workspace_id: int, query: ParsedQuery, filters: Filters, cap: int) -> list[Hit]:
        if not query.norm:
            return []
        from opensearchpy.exceptions import NotFoundError, OpenSearchException

        body = search_body(workspace_id, query, filters, cap)
        try:
            answer = self.client.search(index=self.index, body=body, routing=routing(workspace_id))
        except NotFoundError:
            return []  # no index yet: nothing was ever indexed in this environment
        except OpenSearchException as exc:
            log.warning("search: OpenSearch failed: %s", exc)
            raise SearchUnavailable("Search is unavailable right now. Try again shortly.") from exc
        keys = []
        for hit in (answer.get("hits") or {}).get("hits") or []:
            src = hit.get("_source") or {}
            try:
                if int(src["workspace_id"]) != int(workspace_id):
                    continue  # never trust a document of another workspace, whatever the index holds
                keys.append((int(src["table_id"]), int(src["row_id"]), int(src["column_id"])))
            except (KeyError, TypeError, ValueError):
                continue
        return self._confirmed(workspace_id, query, keys)

    def _confirmed(self, workspace_id: int, query: ParsedQuery, keys: list[tuple[int, int, int]]) -> list[Hit]:
        """The candidates still in the workspace's index of live tables and columns, scored by the
        PostgreSQL engine's own expression (so both engines rank alike by construction).

        The candidates are looked up one by one by primary key first (a lateral subquery kept apart
        by ``OFFSET 0``, in a materialised CTE): joined directly, the planner scanned the workspace's
        (workspace, table) index once per candidate (1 s for 600), or hashed a sequential scan of
        the whole index; the query's tsquery is built once (``q``), not once per candidate."""
        if not keys:
            return []
        params: dict[str, Any] = {
            "ws": int(workspace_id),
            "qn": query.norm,
            "prefix": _like_prefix(query.norm),
            "t": [k[0] for k in keys],
            "r": [k[1] for k in keys],
            "c": [k[2] for k in keys],
        }
        words, tsq = "false", "NULL::tsquery"
        if uses_words(query):
            params["tsq"] = " & ".join(f"'{t}':*" for t in query.tokens)
            words, tsq = "d.tsv @@ q.tsq", "to_tsquery('simple', :tsq)"
        # The typo way as PostgreSQL's: every long word by its prefix or a close vocabulary word.
        scanned, short = split_tokens(query)
        groups = None
        if scanned and uses_words(query):
            threshold = sa.text("SELECT set_config('pg_trgm.similarity_threshold', :s, true)")
            db.session.execute(threshold, {"s": SIMILARITY})
            groups = typo_groups(workspace_id, scanned, _completions(workspace_id, scanned))
        typo, typo_tsq = "false", "NULL::tsquery"
        if groups is not None:
            params["tsq_typos"] = " & ".join([*groups, *(f"{_lexeme(t)}:*" for t in short)])
            typo = "d.tsv @@ q.typo_tsq"
            typo_tsq = "to_tsquery('simple', :tsq_typos)"
        rows = db.session.execute(
            sa.text(
                f"""
                WITH q AS MATERIALIZED (SELECT {tsq} AS tsq, {typo_tsq} AS typo_tsq),
                d AS MATERIALIZED (
                    SELECT d.* FROM unnest(CAST(:t AS bigint[]), CAST(:r AS bigint[]), CAST(:c AS bigint[])) k(t, r, c)
                    CROSS JOIN LATERAL (
                        SELECT * FROM search_documents s
                        WHERE s.table_id = k.t AND s.row_id = k.r AND s.column_id = k.c OFFSET 0
                    ) d
                ),
                m AS (
                    SELECT d.table_id, d.row_id, d.column_id, d.value, d.norm, d.states, d.providers,
                           t.name AS table_name, col.name AS column_name,
                           similarity(d.norm, :qn) AS sim, word_similarity(:qn, d.norm) AS wsim, {words} AS ft,
                           {norm_match(query)} AS nm, {typo} AS typo
                    FROM d CROSS JOIN q
                    JOIN tables t ON t.id = d.table_id AND t.workspace_id = :ws
                    JOIN table_columns col ON col.id = d.column_id AND col.table_id = d.table_id
                         AND col.deleted_at IS NULL
                    WHERE d.workspace_id = :ws
                )
                SELECT table_id, row_id, column_id, value, states, providers, table_name, column_name,
                       greatest(sim, wsim)
                       + CASE WHEN norm = :qn THEN 1.0 WHEN norm LIKE :prefix ESCAPE '\\' THEN 0.5 ELSE 0 END
                       + CASE WHEN ft THEN 0.25 ELSE 0 END AS score,
                       nm OR ft AS direct, typo
                FROM m
                """  # noqa: S608 - fixed SQL and constants formatted in; every value is bound
            ),
            params,
        ).all()
        # As in PostgreSQL: the typo way counts only when no cell matched directly.
        kept = [r for r in rows if r.direct] or [r for r in rows if r.typo]
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
            for r in kept
        ]

    # writing (the mirror of search_documents) ---------------------------------------------------

    def ensure_index(self) -> bool:
        """Create the environment's index when it is missing; True when it was created."""
        from opensearchpy.exceptions import RequestError

        if self.client.indices.exists(index=self.index):
            return False
        try:
            self.client.indices.create(index=self.index, body=index_body())
        except RequestError as exc:
            if exc.error != "resource_already_exists_exception":  # another worker created it first
                raise
            return False
        return True

    def _documents(self, table_id: int, row_ids: list[int] | None) -> Iterator[list[dict[str, Any]]]:
        """The documents to mirror, ``BULK_DOCS`` at a time (a server-side cursor: a whole table of
        millions of cells is never held in memory)."""
        where = "table_id = :t" + (" AND row_id = ANY(:ids)" if row_ids is not None else "")
        result = db.session.execute(
            sa.text(f"SELECT {', '.join(_FIELDS)} FROM search_documents WHERE {where}"),  # noqa: S608 - fixed SQL
            {"t": int(table_id), "ids": row_ids},
            execution_options={"stream_results": True, "yield_per": BULK_DOCS},
        )
        try:
            for part in result.mappings().partitions(BULK_DOCS):
                yield [{**r, "states": list(r["states"] or ()), "providers": list(r["providers"] or ())} for r in part]
        finally:
            result.close()

    def push(self, workspace_id: int, table_id: int, row_ids: list[int] | None = None) -> int:
        """Mirror a table's documents (some rows, or all): delete them, then index the current ones."""
        self.ensure_index()
        self.client.delete_by_query(
            index=self.index,
            body=rows_query(workspace_id, table_id, row_ids),
            routing=routing(workspace_id),
            refresh=True,
            conflicts="proceed",
        )
        sent = 0
        with closing(self._documents(table_id, row_ids)) as batches:
            for docs in batches:
                answer = self.client.bulk(body=bulk_lines(self.index, docs), refresh=True)
                if answer.get("errors"):
                    failed = [i for i in answer.get("items", []) if (next(iter(i.values())) or {}).get("error")]
                    raise SearchUnavailable(f"OpenSearch refused {len(failed)} of {len(docs)} documents.")
                sent += len(docs)
        return sent

    def drop_table(self, workspace_id: int, table_id: int) -> None:
        self.client.delete_by_query(
            index=self.index,
            body=rows_query(workspace_id, table_id),
            routing=routing(workspace_id),
            conflicts="proceed",
        )
