"""Building and keeping the PostgreSQL search index (``search_documents``), in set-based SQL.

One document per non-empty text-like cell, and per enrichment cell that shows a value: the text
shown (``value``), its normalised form for trigrams (``norm``: lower case, single spaces; emails
lower-cased; domains and URLs without scheme, ``www.`` and path, so ``https://www.acme.com/`` and
``ACME.com`` meet), its ``tsvector`` (``simple`` and ``english``), and the row's enrichment states
and providers as facets.

Freshness: search installs three statement-level triggers on each ``ut.t_<id>`` (insert, update,
delete; the function is the migration's ``search_mark_rows``). Deletes leave the index in the
writer's transaction; inserts and updates mark rows in ``search_pending`` (one whole-table mark past
5,000 rows). ``sync`` reindexes marked rows from the table's storage with one DELETE and one
INSERT … SELECT per table, and adds their words to the workspace's ``search_words``; it
also installs the triggers on tables that lack them (new tables, rewritten tables) and indexes them
whole, and drops the documents of deleted tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from morket.core.normalise import normalised_sql
from morket.extensions import db
from morket.search.engine import COMPANY_WORDS

# Column types whose cells are text the index reads as they are (formulas and lookups are stored as text).
INDEXED_TEXT_TYPES = frozenset(
    {"text", "long_text", "email", "url", "phone", "domain", "single_select", "ai", "lookup", "formula"}
)
VALUE_CHARS = 1000  # the text kept per document (shown and matched by full text)
NORM_CHARS = 256  # the text matched by trigrams
SYNC_BATCH = 5000  # marked rows reindexed per statement
_NORM_KIND = {"email": "email", "domain": "domain", "url": "domain"}
TRIGGERS = ("search_mark_ins", "search_mark_upd", "search_mark_del")
# The advisory lock's first key names search's words; the second is the workspace id. Writers of
# words hold it shared, a prune holds it alone (so it never deletes a word a sync is adding back).
WORDS_LOCK_CLASS = 0x5354


def _company_words(expr: str) -> str:
    """SQL writing company words short, as ``engine.parse_query`` does ("acme corporation" -> "acme corp")."""
    for long, short in COMPANY_WORDS.items():
        expr = rf"regexp_replace({expr}, '\m{long}\M', '{short}', 'g')"
    return expr


def _exec(sql: str, params: dict[str, Any] | None = None) -> sa.CursorResult:
    return db.session.execute(sa.text(sql), params or {})


@dataclass(frozen=True)
class IndexedTable:
    """What the index needs of a table: its id, workspace and the columns it reads (id, type)."""

    id: int
    workspace_id: int
    columns: tuple[tuple[int, str], ...]


def load_table(table_id: int) -> IndexedTable | None:
    """Read a table's live indexed columns from the catalogue (None when the table is gone)."""
    row = _exec("SELECT workspace_id FROM tables WHERE id = :t", {"t": table_id}).first()
    if row is None:
        return None
    cols = _exec(
        "SELECT id, type FROM table_columns WHERE table_id = :t AND deleted_at IS NULL ORDER BY position, id",
        {"t": table_id},
    ).all()
    kept = tuple((int(c.id), c.type) for c in cols if c.type in INDEXED_TEXT_TYPES or c.type == "enrichment")
    return IndexedTable(int(table_id), int(row.workspace_id), kept)


def documents_select(table: IndexedTable, *, where: str = "") -> str:
    """The SELECT producing the documents of ``table``'s rows (all, or those ``where`` keeps).

    Emails, domains and URLs get no words: their normalised form finds them (equal, or starting
    with the query), and their lexemes (every address and host, one each) made a word prefix such
    as "northwind" read a hundred hosts' posting lists ("northwind23.com", ...) for nothing.
    """
    values = []
    for column_id, kind in table.columns:
        cell = f"r.c_{column_id} ->> 'value'" if kind == "enrichment" else f"r.c_{column_id}::text"
        values.append(f"({column_id}::bigint, {cell}, '{_NORM_KIND.get(kind, 'text')}')")
    norm = (
        "CASE v.kind "
        f"WHEN 'email' THEN {normalised_sql('v.value', 'email')} "
        f"WHEN 'domain' THEN {normalised_sql('v.value', 'domain')} "
        f"ELSE {_company_words(normalised_sql('v.value', 'text'))} END"
    )
    return f"""
        SELECT {table.workspace_id}::bigint, {table.id}::bigint, r.id, v.column_id,
               left(v.value, {VALUE_CHARS}),
               left({norm}, {NORM_CHARS}),
               CASE WHEN v.kind IN ('email', 'domain') THEN ''::tsvector
                    ELSE to_tsvector('simple', left(v.value, {VALUE_CHARS}))
                         || to_tsvector('english', left(v.value, {VALUE_CHARS})) END,
               coalesce(st.states, '{{}}'), coalesce(st.providers, '{{}}')
        FROM ut.t_{table.id} r
        CROSS JOIN LATERAL (VALUES {", ".join(values)}) AS v(column_id, value, kind)
        LEFT JOIN LATERAL (
            SELECT array_agg(DISTINCT e.value ->> 'status') FILTER (WHERE e.value ->> 'status' IS NOT NULL) AS states,
                   array_agg(DISTINCT e.value ->> 'provider') FILTER (WHERE e.value ->> 'provider' IS NOT NULL)
                     AS providers
            FROM jsonb_each(CASE WHEN jsonb_typeof(r.cell_state) = 'object' THEN r.cell_state ELSE '{{}}' END) e
            WHERE jsonb_typeof(e.value) = 'object'
        ) st ON true
        WHERE v.value IS NOT NULL AND btrim(v.value) <> '' {where}
    """  # noqa: S608 - only catalogue integers and fixed SQL are formatted in; row ids are bound


# Listeners told, in the writer's transaction, which documents were rewritten: (table, row ids or
# None for the whole table), and which tables' documents were dropped: [(workspace id, table id)].
# The OpenSearch engine mirrors the index through them (``service.engine()`` registers it).
INDEXED: list[Callable[[IndexedTable, list[int] | None], None]] = []
DROPPED: list[Callable[[list[tuple[int, int]]], None]] = []


_INSERT = (
    "INSERT INTO search_documents (workspace_id, table_id, row_id, column_id, value, norm, tsv, states, providers) "
)


WORD_FILTER = "length(w.word) BETWEEN 3 AND 40"


def _add_words(table: IndexedTable, row_ids: list[int] | None) -> None:
    """Record the distinct words (lexemes of 3 to 40 characters) of the documents just written."""
    _exec("SELECT pg_advisory_xact_lock_shared(:c, :w)", {"c": WORDS_LOCK_CLASS, "w": table.workspace_id})
    rows = "AND d.row_id = ANY(:ids)" if row_ids is not None else ""
    sql = (
        "INSERT INTO search_words (workspace_id, word) "  # noqa: S608 - fixed clauses; ids are bound
        "SELECT DISTINCT d.workspace_id, w.word FROM search_documents d "
        "CROSS JOIN LATERAL unnest(tsvector_to_array(d.tsv)) AS w(word) "
        f"WHERE d.table_id = :t {rows} AND {WORD_FILTER} ON CONFLICT DO NOTHING"
    )
    _exec(sql, {"t": table.id, "ids": row_ids})


def prune_words(workspace_ids: list[int]) -> int:
    """Delete the words no document of their workspace holds any more; return how many.

    One pass over the workspace's documents, so it runs when tables are dropped, not on every
    write or rebuild: a stale word only adds an alternative to a typo query that matches nothing.
    """
    pruned = 0
    for workspace_id in sorted(set(workspace_ids)):
        _exec("SELECT pg_advisory_xact_lock(:c, :w)", {"c": WORDS_LOCK_CLASS, "w": workspace_id})
        pruned += _exec(
            "WITH held AS MATERIALIZED ("  # noqa: S608 - a fixed clause
            "  SELECT DISTINCT w.word FROM search_documents d "
            "  CROSS JOIN LATERAL unnest(tsvector_to_array(d.tsv)) AS w(word) "
            f"  WHERE d.workspace_id = :w AND {WORD_FILTER}) "
            "DELETE FROM search_words s WHERE s.workspace_id = :w "
            "AND NOT EXISTS (SELECT 1 FROM held h WHERE h.word = s.word)",
            {"w": workspace_id},
        ).rowcount
    return pruned


def index_rows(table: IndexedTable, row_ids: list[int]) -> int:
    """Replace the documents of ``row_ids`` of ``table`` with their current cells; return documents written."""
    _exec("DELETE FROM search_documents WHERE table_id = :t AND row_id = ANY(:ids)", {"t": table.id, "ids": row_ids})
    if not table.columns or not row_ids:
        return 0
    written = _exec(_INSERT + documents_select(table, where="AND r.id = ANY(:ids)"), {"ids": row_ids}).rowcount
    _add_words(table, row_ids)
    for listener in INDEXED:
        listener(table, row_ids)
    return written


def reindex_table(table: IndexedTable) -> int:
    """Rebuild every document of ``table`` in this transaction; return how many were written.

    Build, then swap: the old documents are deleted and the new ones inserted in one transaction,
    so readers see the previous index until it commits and search never goes offline.
    """
    _exec("DELETE FROM search_documents WHERE table_id = :t", {"t": table.id})
    _exec("DELETE FROM search_pending WHERE table_id = :t", {"t": table.id})
    written = _exec(_INSERT + documents_select(table)).rowcount if table.columns else 0
    if written:
        _add_words(table, None)
    _exec(
        "INSERT INTO search_tables (table_id, workspace_id, indexed_at) VALUES (:t, :w, now()) "
        "ON CONFLICT (table_id) DO UPDATE SET indexed_at = now(), workspace_id = EXCLUDED.workspace_id",
        {"t": table.id, "w": table.workspace_id},
    )
    for listener in INDEXED:
        listener(table, None)
    return written


ANALYZE_AFTER = 5000  # documents written at once that make the planner's statistics worth refreshing


def refresh_statistics(written: int) -> None:
    """Refresh the index tables' planner statistics after a bulk write of ``written`` documents.

    Autovacuum gets there within a minute, but a whole table indexed at once (a new 20,000-row
    import) makes the planner think a table's facet holds one document until it does; ANALYZE
    samples a fixed number of rows, so it costs about the same at any size.
    """
    if written >= ANALYZE_AFTER:
        _exec("ANALYZE search_documents, search_words")


def install_triggers(table_id: int) -> bool:
    """Install the marking triggers on ``ut.t_<id>`` (False when its storage does not exist)."""
    name = f"ut.t_{int(table_id)}"
    if _exec("SELECT to_regclass(:n)", {"n": name}).scalar() is None:
        return False
    tid = int(table_id)
    for trigger, event, ref in (
        ("search_mark_ins", "INSERT", "NEW TABLE AS new_rows"),
        ("search_mark_upd", "UPDATE", "NEW TABLE AS new_rows OLD TABLE AS old_rows"),
        ("search_mark_del", "DELETE", "OLD TABLE AS old_rows"),
    ):
        _exec(f"DROP TRIGGER IF EXISTS {trigger} ON {name}")
        _exec(
            f"CREATE TRIGGER {trigger} AFTER {event} ON {name} REFERENCING {ref} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION search_mark_rows('{tid}')"
        )
    return True


def unwatched_tables(workspace_id: int | None = None) -> list[int]:
    """Tables whose storage lacks the marking triggers (new or rewritten tables), or never indexed."""
    rows = _exec(
        """
        SELECT t.id FROM tables t
        WHERE (CAST(:w AS bigint) IS NULL OR t.workspace_id = :w)
          AND to_regclass('ut.t_' || t.id) IS NOT NULL
          AND (NOT EXISTS (SELECT 1 FROM search_tables s WHERE s.table_id = t.id)
               OR NOT EXISTS (SELECT 1 FROM pg_trigger g
                              WHERE g.tgrelid = to_regclass('ut.t_' || t.id) AND g.tgname = 'search_mark_upd'))
        ORDER BY t.id
        """,
        {"w": workspace_id},
    ).all()
    return [int(r.id) for r in rows]


def watch_and_index(table_id: int) -> int:
    """Install the triggers on a table and index it whole; return documents written (0 if gone)."""
    if not install_triggers(table_id):
        return 0
    table = load_table(table_id)
    return reindex_table(table) if table is not None else 0


def drop_gone_tables() -> int:
    """Delete the documents of tables that no longer exist; return how many tables were dropped."""
    rows = _exec(
        "SELECT s.table_id, s.workspace_id FROM search_tables s LEFT JOIN tables t ON t.id = s.table_id "
        "WHERE t.id IS NULL"
    ).all()
    gone = [int(r.table_id) for r in rows]
    if gone:
        for listener in DROPPED:
            listener([(int(r.workspace_id), int(r.table_id)) for r in rows])
        _exec("DELETE FROM search_documents WHERE table_id = ANY(:g)", {"g": gone})
        _exec("DELETE FROM search_pending WHERE table_id = ANY(:g)", {"g": gone})
        _exec("DELETE FROM search_tables WHERE table_id = ANY(:g)", {"g": gone})
        prune_words([int(r.workspace_id) for r in rows])
    return len(gone)


def sync_table(table_id: int) -> int:
    """Reindex the marked rows of one table (all of it after a whole-table mark); return rows done.

    The marks are taken with SKIP LOCKED so two syncs never reindex the same rows at once; the
    lag of the oldest mark is recorded in ``search_syncs``.
    """
    marks = _exec(
        "SELECT row_id, marked_at FROM search_pending WHERE table_id = :t ORDER BY row_id LIMIT :n "
        "FOR UPDATE SKIP LOCKED",
        {"t": table_id, "n": SYNC_BATCH},
    ).all()
    if not marks:
        return 0
    oldest = min(m.marked_at for m in marks)
    table = load_table(table_id)
    ids = [int(m.row_id) for m in marks]
    if table is None:
        _exec("DELETE FROM search_pending WHERE table_id = :t", {"t": table_id})
        return 0
    if 0 in ids:
        reindex_table(table)
        done = len(ids)
    else:
        index_rows(table, ids)
        _exec("DELETE FROM search_pending WHERE table_id = :t AND row_id = ANY(:ids)", {"t": table_id, "ids": ids})
        done = len(ids)
    _exec(
        "INSERT INTO search_syncs (rows, lag_ms) "
        "SELECT :n, GREATEST(0, (extract(epoch FROM clock_timestamp() - :oldest) * 1000)::int)",
        {"n": done, "oldest": oldest},
    )
    return done


def pending_tables(limit: int = 100) -> list[int]:
    """Tables with marked rows, oldest mark first."""
    rows = _exec(
        "SELECT table_id FROM search_pending GROUP BY table_id ORDER BY min(marked_at) LIMIT :n", {"n": limit}
    ).all()
    return [int(r.table_id) for r in rows]


def prune_sync_log(keep: int = 1000) -> None:
    _exec(
        "DELETE FROM search_syncs WHERE id < "
        "(SELECT min(id) FROM (SELECT id FROM search_syncs ORDER BY id DESC LIMIT :k) s)",
        {"k": keep},
    )


@dataclass(frozen=True)
class LagReport:
    """How far the index is behind: waiting rows, the oldest waiting mark's age, recent syncs' p95."""

    pending_rows: int
    oldest_pending_s: float | None
    recent_p95_s: float | None
    recent_syncs: int
    documents: int


def lag_report() -> LagReport:
    row = _exec(
        "SELECT count(*) AS n, extract(epoch FROM clock_timestamp() - min(marked_at)) AS age FROM search_pending"
    ).one()
    syncs = _exec(
        "SELECT count(*) AS n, percentile_cont(0.95) WITHIN GROUP (ORDER BY lag_ms) AS p95 "
        "FROM (SELECT lag_ms FROM search_syncs ORDER BY id DESC LIMIT 200) s"
    ).one()
    docs = _exec("SELECT reltuples::bigint FROM pg_class WHERE oid = 'search_documents'::regclass").scalar() or 0
    return LagReport(
        pending_rows=int(row.n),
        oldest_pending_s=float(row.age) if row.age is not None else None,
        recent_p95_s=float(syncs.p95) / 1000 if syncs.p95 is not None else None,
        recent_syncs=int(syncs.n),
        documents=max(int(docs), 0),
    )
