"""Search's jobs: keeping the index fresh, and rebuilding it.

``sync_search`` runs after every committed write that went through tables' change hooks (queued
through the outbox, one job per table) and every two seconds from the scheduler for the writes
that did not (imports, enrichment results, CRM pulls, inbound webhooks all mark rows through the
storage triggers either way). Each table's batch commits on its own.
"""

from __future__ import annotations

import time

from morket.extensions import db
from morket.search import indexing


def sync_search(table_id: int | None = None, max_seconds: float = 20.0) -> int:
    """Index what is marked (one table's marks, or every table's); return rows reindexed.

    Without a table it also watches new tables (triggers, then a whole index) and drops the
    documents of deleted ones.
    """
    started = time.monotonic()
    if table_id is None:
        for new_table in indexing.unwatched_tables():
            written = indexing.watch_and_index(new_table)
            db.session.commit()
            indexing.refresh_statistics(written)
            db.session.commit()
        indexing.drop_gone_tables()
        db.session.commit()
    done = 0
    while time.monotonic() - started < max_seconds:
        tables = [int(table_id)] if table_id is not None else indexing.pending_tables()
        step = 0
        for one in tables:
            step += indexing.sync_table(one)
            db.session.commit()
        done += step
        if step == 0:
            break
    indexing.refresh_statistics(done)
    db.session.commit()
    if table_id is None:
        indexing.prune_sync_log()
        db.session.commit()
    return done


def reindex(table_ids: list[int]) -> int:
    """Rebuild the index of ``table_ids`` (triggers first), one transaction per table; return documents.

    Words the rebuilt rows no longer hold stay in the vocabulary until a table of the workspace is
    dropped (``indexing.prune_words``): a stale word costs a typo query one alternative that matches nothing.
    """
    written = 0
    for table_id in table_ids:
        written += indexing.watch_and_index(int(table_id))
        db.session.commit()
    indexing.drop_gone_tables()
    db.session.commit()
    indexing.refresh_statistics(written)
    db.session.commit()
    return written
