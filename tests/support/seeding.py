"""Rows loaded fast for tests and benches: synthetic values per column type, or given values, by COPY.

Not part of the app: it writes stored values straight into a table's storage, bypassing cell
parsing, which only data the caller trusts may do. It follows the rules of every row write of
the tables domain through its public face (``morket.tables.service``): the tenant check, the
table's row lock, the next position, and stale views.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from morket.core.errors import ValidationFailed
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import service
from morket.tables.cells import select_options
from morket.tables.models import Column, Table

_WORDS = (
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "aperture",
    "vandelay",
    "massive",
    "dynamic",
    "pied",
    "piper",
    "oscorp",
    "nakatomi",
    "gringotts",
    "monarch",
    "zorg",
    "duff",
    "krusty",
)


def _synthetic(column: Column, rng: random.Random, i: int) -> Any:
    kind = column.type
    word = _WORDS[rng.randrange(len(_WORDS))]
    if kind in ("text", "ai"):
        return f"{word.title()} {rng.randrange(100_000)}"
    if kind == "long_text":
        return " ".join(_WORDS[rng.randrange(len(_WORDS))] for _ in range(12))
    if kind == "number":
        return rng.randrange(1, 100_000)
    if kind == "currency":
        return f"{rng.randrange(0, 10_000_000)}.{rng.randrange(100):02d}"
    if kind == "percent":
        return f"{rng.randrange(0, 10_000) / 100:.2f}"
    if kind == "date":
        return date(2000, 1, 1) + timedelta(days=rng.randrange(9000))
    if kind == "datetime":
        return datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(200_000_000))
    if kind == "checkbox":
        return rng.random() < 0.5
    if kind == "single_select":
        options = select_options(column.config)
        return options[rng.randrange(len(options))] if options else None
    if kind == "multi_select":
        options = select_options(column.config)
        return [o for o in options if rng.random() < 0.3] or None
    if kind == "email":
        return f"person{i}@{word}.com"
    if kind == "url":
        return f"https://{word}.com/p/{i}"
    if kind == "phone":
        return f"+1 555 {rng.randrange(1_000_000):07d}"
    if kind == "domain":
        return f"{word}{rng.randrange(1000)}.com"
    if kind in ("json", "enrichment"):
        return json.dumps({"n": i, "tag": word})
    return None


def seed_rows(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    n: int,
    *,
    seed: int = 0,
    values: Iterable[Sequence[Any]] | None = None,
) -> int:
    """Append ``n`` rows fast with COPY: synthetic values per column type, or ``values`` (one tuple a row).

    ``values`` rows give a stored value per live column in order and bypass cell parsing: it is
    for benches and tests that load trusted data.
    """
    service.check_owned(workspace, table)
    if n < 0:
        raise ValidationFailed("Seed zero or more rows.")
    live = table.live_columns
    service.lock_rows(table)
    start = service.next_pos(table)
    names = ", ".join(["pos", *(c.storage_name for c in live)])
    rng = random.Random(seed)
    source = values if values is not None else ([_synthetic(c, rng, start + i) for c in live] for i in range(n))
    raw = db.session.connection().connection.driver_connection
    written = 0
    with raw.cursor() as cursor, cursor.copy(f"COPY ut.{table.storage_name} ({names}) FROM STDIN") as copy:
        for row in source:
            if written == n:
                break
            copy.write_row((start + written, *row))
            written += 1
    table.row_count += written
    service.mark_views_stale(workspace, table, None)
    db.session.flush()
    return written
