"""The PostgreSQL search engine: full text (``simple``) and ``pg_trgm`` over ``search_documents``.

Three direct ways of matching, each capped at ``cap`` documents and each filtered by the workspace:
the normalised cell equals the query, or starts with it (the ``(workspace_id, norm)`` btree:
"acme.co" finds ``acme.com``, "jane@ac" an email), and every query word is a word prefix (the GIN
index on the tsvector: "acme c" finds "Acme Corp"). They are one statement after the
transaction's settings.

When they find nothing, the typo way: each query word of three letters or more is looked up in
the workspace's vocabulary (``search_words``: its distinct alphabetic words, tens of thousands
where the distinct values number millions) by trigram similarity, and the documents are found
by full text again, every word by its prefix or one of its close words ("qorvatec industres"
finds "Qorvatek Industries"). It runs as a second statement under a short limit
(``TYPOS_TIMEOUT_MS``); past it the search finds nothing instead of holding the request.

The candidates are joined to the workspace's tables and live columns (a deleted table or column
is never found, even before its documents are purged), whose names come back with each hit.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from morket.core.errors import MorketError
from morket.extensions import db
from morket.search.engine import Filters, Hit, ParsedQuery

STATEMENT_TIMEOUT_MS = 5000  # a search that runs longer is stopped and answered, never left to run
TYPOS_TIMEOUT_MS = 400  # the typo way gives up sooner: it only runs when nothing matched directly


class SearchTooSlow(MorketError):
    status = 503
    code = "search_timeout"


SCANNED_PREFIX = 3  # shorter query words are checked on the candidates, not looked up in the index
SIMILARITY = "0.45"  # ``%`` between a query word and a vocabulary word: "acmee" ~ "acme" (0.57)
CLOSE_WORDS = 4  # vocabulary words tried in place of each query word
NORM_PREFIX_MIN = 3  # a shorter query does not look up cells starting with it (a range too wide to read)
COMPLETIONS_MAX = 16  # a query word completed by more words of the vocabulary is looked up as a prefix
_DOCS = "search_documents d"
_COLS = "d.table_id, d.row_id, d.column_id, d.value, d.norm, d.states, d.providers"


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _lexeme(word: str) -> str:
    """A word quoted for ``to_tsquery`` (query tokens are ``\\w+`` and vocabulary words letters, so
    no quote can be in them; doubled anyway)."""
    return "'" + word.replace("'", "''") + "'"


_LIVE = """
    JOIN tables t ON t.id = c.table_id AND t.workspace_id = :ws
    JOIN table_columns col ON col.id = c.column_id AND col.table_id = c.table_id AND col.deleted_at IS NULL
"""


def _scored(ways: list[str], more: list[str] | None = None) -> str:
    """The candidates of ``ways`` (and of ``more`` when ``ways`` found fewer than ``:cap``), joined to
    live tables and columns, scored, one per cell.

    Each union is materialised once (inlined, the planner ran it once per live column). ``more`` sits
    behind a one-time filter (an uncorrelated count), so its scan is never started when ``ways``
    filled the cap: "hoo" has 200 cells starting with it in the btree at once, where the word index
    would build a bitmap of the 40,000 documents holding a word that starts with it, first.
    """
    extra = ""
    if more:
        extra = f""",
        more AS MATERIALIZED (
            SELECT * FROM ({" UNION ALL ".join(more)}) m WHERE (SELECT count(*) FROM first) < :cap
        )"""  # noqa: S608 - fixed SQL
    return f"""
        WITH first AS MATERIALIZED ({" UNION ALL ".join(ways)}){extra},
        cand AS (SELECT * FROM first{" UNION ALL SELECT * FROM more" if more else ""})
        SELECT c.table_id, c.row_id, c.column_id, c.value, c.states, c.providers,
               t.name AS table_name, col.name AS column_name,
               greatest(similarity(c.norm, :qn), word_similarity(:qn, c.norm))
               + CASE WHEN c.norm = :qn THEN 1.0 WHEN c.norm LIKE :prefix ESCAPE '\\' THEN 0.5 ELSE 0 END
               + CASE WHEN bool_or(c.ft) THEN 0.25 ELSE 0 END AS score
        FROM cand c
        {_LIVE}
        GROUP BY c.table_id, c.row_id, c.column_id, c.value, c.norm, c.states, c.providers, t.name, col.name
    """  # noqa: S608 - fixed SQL formatted in; every value is a bound parameter


def _cancelled(exc: sa.exc.OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "57014"  # query_canceled


def _run(sql: str, params: dict[str, Any]) -> list[Any]:
    """Run one search statement; one the time limit stopped is SearchTooSlow, its transaction rolled
    back (no savepoint around it: two round trips a search for a case that ends the request, whose
    error page then reads the database again in a fresh transaction)."""
    try:
        return db.session.execute(sa.text(sql), params).all()
    except sa.exc.OperationalError as exc:
        if not _cancelled(exc):
            raise
        db.session.rollback()
        raise SearchTooSlow("This search took too long and was stopped; add a word or pick a table.") from None


def _words_way(scope: str, params: dict[str, Any], groups: list[str], short: list[str], name: str) -> str:
    """The full-text way: every group (alternatives of one word) matches a word of the cell.

    ``groups`` are looked up in the GIN index, as they are written (``simple``: no stemming);
    ``short`` words (under three letters: "c" is every
    word starting with c) are checked on those candidates only (``ts_match_vq``, ``@@`` that no
    index takes). ``workspace_id + 0`` keeps the planner on the GIN index: given a ``LIMIT``, it
    bet on walking the workspace's btree and filtering every document (4 million at a million rows).
    """
    params[name] = " & ".join(groups)
    words = f"d.tsv @@ to_tsquery('simple', :{name})"
    if short:
        params[f"{name}_all"] = " & ".join([*groups, *(f"{_lexeme(t)}:*" for t in short)])
        words += f" AND ts_match_vq(d.tsv, to_tsquery('simple', :{name}_all))"
    gin_scope = scope.replace("d.workspace_id = :ws", "d.workspace_id + 0 = :ws", 1)
    # Whether every query word starts a word of the cell, as the btree's candidates are scored (a
    # typo's stand-in word does not count: "acmee" starts no word of "Acme Corp").
    ft = "d.tsv @@ to_tsquery('simple', :tsq_all)"
    return f"(SELECT {_COLS}, {ft} AS ft FROM {_DOCS} WHERE {gin_scope} AND {words} LIMIT :cap)"  # noqa: S608


def _completions(workspace_id: int, tokens: list[str]) -> dict[str, list[str] | None]:
    """Each token's completions from the vocabulary ("hool" -> "hooli"), one statement; None for a
    token with more than ``COMPLETIONS_MAX`` (it is then looked up as a prefix)."""
    patterns = [_like_prefix(t) for t in tokens]
    rows = db.session.execute(
        sa.text(
            "SELECT t.tok, w.word FROM unnest(CAST(:toks AS text[]), CAST(:pats AS text[])) AS t(tok, pat) "  # noqa: S608 - a constant
            "CROSS JOIN LATERAL (SELECT s.word FROM search_words s WHERE s.workspace_id = :ws "
            "  AND s.word ~>=~ t.tok AND s.word ~<~ (t.tok || chr(1114111)) "  # the prefix index's range
            f"  AND s.word LIKE t.pat ESCAPE '\\' ORDER BY s.word LIMIT {COMPLETIONS_MAX + 1}) w"
        ),
        {"toks": tokens, "pats": patterns, "ws": int(workspace_id)},
    ).all()
    found: dict[str, list[str] | None] = {t: [] for t in tokens}
    for row in rows:
        words = found[row.tok]
        if words is not None:
            words.append(row.word)
            if len(words) > COMPLETIONS_MAX:
                found[row.tok] = None
    return found


def _group(token: str, completions: list[str] | None, close: list[str] | None = None) -> str:
    """One query word as a tsquery group: its completions as exact lexemes (GIN intersects exact
    posting lists by skipping through them: "northwind & importers" 2.5 ms where the prefixes
    "northwind:* & importers:*" unioned every completion's list first, 33 ms, at a million rows), or
    the prefix itself when it has none or too many; with its close words for the typo way."""
    alternatives = [_lexeme(w) for w in completions] if completions else [f"{_lexeme(token)}:*"]
    alternatives += [_lexeme(w) for w in close or () if w not in (completions or ())]
    return alternatives[0] if len(alternatives) == 1 else "(" + " | ".join(alternatives) + ")"


def _close_words(workspace_id: int, tokens: list[str]) -> dict[str, list[str] | None]:
    """Each token's closest vocabulary words, one statement (None for a token that is a word of the
    vocabulary itself: spelt right, it needs no stand-in). Close means trigram similarity at least
    ``SIMILARITY``, or the token's word similarity within the word at least pg_trgm's 0.6 ("globx"
    in "globex": 0.67, where their similarity is 0.44)."""
    rows = db.session.execute(
        sa.text(
            "SELECT t.tok, k.known, w.word FROM unnest(CAST(:toks AS text[])) AS t(tok) "  # noqa: S608 - a constant
            "CROSS JOIN LATERAL (SELECT EXISTS (SELECT 1 FROM search_words e "
            "  WHERE e.workspace_id = :ws AND e.word = t.tok) AS known) k "
            "LEFT JOIN LATERAL (SELECT s.word FROM search_words s "
            "  WHERE NOT k.known AND s.workspace_id + 0 = :ws AND (s.word % t.tok OR t.tok <% s.word) "
            "  AND s.word ~ '^[[:alpha:]]+$' "
            f"  ORDER BY s.word <-> t.tok, s.word LIMIT {CLOSE_WORDS}) w ON true"
        ),
        {"toks": tokens, "ws": int(workspace_id)},
    ).all()
    found: dict[str, list[str] | None] = {t: [] for t in tokens}
    for row in rows:
        if row.known:
            found[row.tok] = None
        elif row.word is not None:  # the statement keeps alphabetic words only
            found[row.tok].append(row.word)  # type: ignore[union-attr]
    return found


def typo_groups(workspace_id: int, scanned: list[str], completions: dict[str, list[str] | None]) -> list[str] | None:
    """The typo way's tsquery groups: a word of the vocabulary as it is, a word it lacks with its
    close words; None when no word has a close word (nothing new to look for: "northwind
    importers" is two right words that no cell holds together)."""
    close = _close_words(workspace_id, scanned)
    if not any(close.values()):
        return None
    return [_group(t, completions.get(t), close[t]) for t in scanned]


def split_tokens(query: ParsedQuery) -> tuple[list[str], list[str]]:
    """A query's words looked up in the index (three letters or more) and those checked on candidates."""
    tokens = list(query.tokens)
    return [t for t in tokens if len(t) >= SCANNED_PREFIX], [t for t in tokens if len(t) < SCANNED_PREFIX]


def uses_words(query: ParsedQuery) -> bool:
    """Whether the word way applies: not to one email or domain ("acme.com", "jane@acme.com"), which
    the normalised cells find (its words, "acme" and "com", would read the index for nothing)."""
    return bool(query.tokens) and (" " in query.norm or not ("." in query.norm or "@" in query.norm))


def norm_match(query: ParsedQuery) -> str:
    """The direct way on normalised cells: equal to the query, or (three characters or more) starting with it."""
    return "d.norm LIKE :prefix ESCAPE '\\'" if len(query.norm) >= NORM_PREFIX_MIN else "d.norm = :qn"


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
        scanned, short = split_tokens(query)
        words = uses_words(query)
        ft = "false"
        if words:
            # Whether every query word starts a word of the cell (the 0.25 of the score), for the
            # cells the btree finds too, so the score does not depend on which way found a cell.
            params["tsq_all"] = " & ".join(f"{_lexeme(t)}:*" for t in query.tokens)
            ft = "d.tsv @@ to_tsquery('simple', :tsq_all)"
        direct = [f"(SELECT {_COLS}, {ft} AS ft FROM {_DOCS} WHERE {scope} AND {norm_match(query)} LIMIT :cap)"]  # noqa: S608
        more = []
        completions: dict[str, list[str] | None] = {}
        if words:
            if scanned:
                completions = _completions(workspace_id, scanned)
                groups = [_group(t, completions[t]) for t in scanned]
            else:
                groups = [f"{_lexeme(t)}:*" for t in short]
            more.append(_words_way(scope, params, groups, short if scanned else [], "tsq"))
        # For this transaction: the ``%`` threshold; no sequential scan (with LIMIT, the planner
        # bets a scan finds a prefix's estimated thousands of matches early, and reads the whole
        # index table when the prefix matches six: "acm" 470 ms, "umbrela" 600 ms at 100,000 rows);
        # no parallel workers and no JIT (at a million rows the word way's estimate passed JIT's
        # threshold: 20 ms of compiling, and 50 ms starting workers, for a scan of 0.1 ms).
        db.session.execute(
            sa.text(
                "SELECT set_config('pg_trgm.similarity_threshold', :s, true),"
                " set_config('enable_seqscan', 'off', true), set_config('statement_timeout', :timeout, true),"
                " set_config('max_parallel_workers_per_gather', '0', true), set_config('jit', 'off', true)"
            ),
            {"s": SIMILARITY, "timeout": str(STATEMENT_TIMEOUT_MS)},
        )
        rows = _run(_scored(direct, more), params)
        if not rows and scanned and words:
            rows = self._typos(workspace_id, scope, params, scanned, short, completions)
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

    def _typos(
        self,
        workspace_id: int,
        scope: str,
        params: dict[str, Any],
        scanned: list[str],
        short: list[str],
        completions: dict[str, list[str] | None],
    ) -> list[Any]:
        """Nothing matched directly: every long word the vocabulary lacks with its close words."""
        db.session.execute(
            sa.text("SELECT set_config('statement_timeout', :timeout, true)"), {"timeout": str(TYPOS_TIMEOUT_MS)}
        )
        try:
            with db.session.begin_nested():  # one savepoint for both statements: a stop ends only them
                groups = typo_groups(workspace_id, scanned, completions)
                if groups is None:
                    return []
                sql = _scored([_words_way(scope, params, groups, short, "tsq_typos")])
                return db.session.execute(sa.text(sql), params).all()
        except sa.exc.OperationalError as exc:  # stopped by the limit: the typo way finds nothing
            if not _cancelled(exc):
                raise
            return []
