"""What the enrichment panel beside the grid reads and writes, on top of the column and run services.

Reads: the catalogue with this workspace's prices, own keys and recent hit rates; each column's role
from a sample of the table's first rows; the inputs a card would send for the first rows. Writes: a
column set up from a card (its target field in a typed column of its own), a returned field added as
a column, and runs over the first rows, the rest, or the empty rows. Services take the workspace and
actor, flush and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from morket.core.db import utcnow
from morket.core.errors import NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.enrichment import catalogue, columns, mapping
from morket.enrichment.config import FIRST_ROWS, MAX_STEPS, Step
from morket.enrichment.models import EnrichmentAttempt, EnrichmentRun
from morket.enrichment.schemas import ColumnSetup
from morket.extensions import db
from morket.tables import service as tables
from morket.tables import storage
from morket.tables.models import Column, Table

if TYPE_CHECKING:
    from morket.enrichment.service import Estimate

SAMPLE_ROWS = 20
PREVIEW_ROWS = 3
STATS_DAYS = 30
# Columns whose cells are computed are never read as inputs by meaning.
_COMPUTED = frozenset({"formula", "enrichment", "ai"})


def _run_service():  # the run service, imported late (it imports the engine)
    from morket.enrichment import service

    return service


def own_providers(workspace: Workspace) -> set[str]:
    """Providers the workspace has stored a key of its own for."""
    from morket.credentials.service import list_credentials

    return {c.provider for c in list_credentials(workspace)}


def operation_stats(workspace: Workspace, *, days: int = STATS_DAYS) -> dict[str, catalogue.Stats]:
    """Per operation, this workspace's fresh final answers of the last ``days`` days, hits and mean latency."""
    fresh = sa.and_(EnrichmentAttempt.cached.is_(False), EnrichmentAttempt.outcome.in_(("hit", "not_found")))
    rows = db.session.execute(
        sa.select(
            EnrichmentAttempt.operation,
            sa.func.count().filter(fresh),
            sa.func.count().filter(sa.and_(fresh, EnrichmentAttempt.outcome == "hit")),
            sa.func.avg(EnrichmentAttempt.latency_ms).filter(fresh),
        )
        .where(
            EnrichmentAttempt.workspace_id == workspace.id,
            EnrichmentAttempt.created_at >= utcnow() - timedelta(days=days),
        )
        .group_by(EnrichmentAttempt.operation)
    )
    return {
        op: catalogue.Stats(int(answered), int(hits), round(float(latency)) if latency is not None else None)
        for op, answered, hits, latency in rows
    }


def cards(workspace: Workspace) -> list[catalogue.Card]:
    """The catalogue as this workspace sees it: its prices, own keys and recent statistics."""
    return catalogue.build_cards(columns.operations(), own=own_providers(workspace), stats=operation_stats(workspace))


def get_card_or_404(workspace: Workspace, key: str) -> catalogue.Card:
    """The card ``key`` or NotFound."""
    card = catalogue.find_card(cards(workspace), key)
    if card is None:
        raise NotFound("There is no such enrichment in the catalogue.")
    return card


# --- the table's columns by meaning -------------------------------------------------------------------


@dataclass(frozen=True)
class TableSample:
    """The table's first rows (their ids and cells by column id) and each column's role."""

    rows: list[tuple[int, dict[int, Any]]]
    roles: dict[int, str]


def sample_table(workspace: Workspace, actor: Actor, table: Table, *, limit: int = SAMPLE_ROWS) -> TableSample:
    """Read the first rows of the table and detect each column's role from its header, type and values."""
    window = tables.read_window(workspace, actor, table, None, 0, limit)
    rows = [(row.id, row.values(table)) for row in window]
    infos = [
        mapping.ColumnInfo(c.id, c.name, c.type, tuple(values.get(c.id) for _, values in rows))
        for c in table.live_columns
        if c.type not in _COMPUTED
    ]
    return TableSample(rows=rows, roles=mapping.detect_roles(infos))


def resolve_card(card: catalogue.Card, roles: dict[int, str]) -> list[mapping.ResolvedInput]:
    """Which column feeds each input of the card."""
    return mapping.resolve_inputs([(spec.name, spec.kind) for spec in card.needs], roles)


def _cell_text(value: Any) -> Any:
    from morket.enrichment.waterfall import cell_input

    return cell_input(value)


def preview_inputs(
    sample: TableSample,
    chosen: dict[str, tuple[int, str | None]],
    *,
    kinds: Mapping[str, str] | None = None,
    limit: int = PREVIEW_ROWS,
) -> list[dict[str, Any]]:
    """What each of the first rows would send: input name -> the value, after any derivation.

    A domain input shows the registrable domain the providers send (a URL's or an email's), a URL
    input (the scrape's site) the value as typed, which the scrape reads subdomain and path included; a cell
    no input can be made from (no host name, no last name) is ``{"unusable": <cell>}``: the
    providers refuse it without a call. An empty cell is None.
    """
    preview = []
    for _, values in sample.rows[:limit]:
        sent: dict[str, Any] = {}
        for name, (column_id, derivation) in chosen.items():
            value = _cell_text(values.get(column_id))
            if value in (None, ""):
                sent[name] = None
                continue
            kind = (kinds or {}).get(name)
            if derivation is None and kind == "domain":
                derivation = "domain"
            if derivation is None and kind == "url":
                # A site read as given (the scrape): shown as typed, when it names a host at all.
                sent[name] = value if mapping.derive_input("domain", value) else {"unusable": value}
                continue
            derived = mapping.derive_input(derivation, value)
            # A cell the input cannot be made from is shown as it is, marked unusable.
            sent[name] = derived if derived not in (None, "") else {"unusable": value}
        preview.append(sent)
    return preview


def missing_inputs(card: catalogue.Card, chosen: dict[str, tuple[int, str | None]]) -> list[str]:
    """Plain sentences naming what the card needs and no column provides."""
    problems = []
    for op in card.steps:
        missing = [spec.label for spec in op.inputs if spec.required and spec.name not in chosen]
        if missing:
            problems.append(f"{op.label} needs a column for: {', '.join(missing)}.")
        if op.any_of and not set(op.any_of) & set(chosen):
            labels = [spec.label for spec in op.inputs if spec.name in op.any_of]
            problems.append(f"{op.label} needs at least one of: {', '.join(labels)}.")
    return problems


# --- writes ---------------------------------------------------------------------------------------------


def free_name(table: Table, wanted: str) -> str:
    """``wanted``, or ``wanted 2``, ``wanted 3`` … when the table already has a column of that name."""
    taken = {c.name.casefold() for c in table.live_columns}
    name, n = wanted, 2
    while name.casefold() in taken:
        name, n = f"{wanted} {n}", n + 1
    return name


def create_from_card(
    workspace: Workspace,
    actor: Actor,
    table: Table,
    card: catalogue.Card,
    *,
    name: str,
    chosen: dict[str, tuple[int, str | None]],
    extra_fields: Sequence[str] = (),
    target_column: bool = True,
) -> Column:
    """Add the card's enrichment column; its target field (and each extra field) into a typed column of its own."""
    returned = {spec.name: spec for spec in card.returns}
    unknown = [f for f in extra_fields if f not in returned]
    if unknown:
        raise ValidationFailed(f"This enrichment returns no field “{unknown[0]}”.", fields={"fields": unknown})
    outputs: list[dict[str, Any]] = []
    reserved: set[str] = set()
    wanted = ([card.target] if target_column and card.target in returned else []) + [
        f for f in dict.fromkeys(extra_fields) if f != card.target or not target_column
    ]
    for field in wanted:
        label = free_name(table, returned[field].label)
        while label.casefold() in reserved or label.casefold() == name.strip().casefold():
            label = free_name(table, f"{label}′")
        reserved.add(label.casefold())
        outputs.append({"field": field, "new_column": label})
    steps = [{"operation": op.key} for op in card.steps]
    validation = None
    if card.validation is not None:
        op = card.validation
        validation = {
            "operation": op.key,
            "input": op.inputs[0].name if op.inputs else "email",
            "field": op.outputs[0].name if op.outputs else "status",
            "accept": ["valid"],
        }
    try:
        setup = ColumnSetup.model_validate(
            {
                "name": name.strip() or card.name,
                "steps": steps,
                "target": card.target,
                "inputs": {k: column_id for k, (column_id, _) in chosen.items()},
                "derive": {k: d for k, (_, d) in chosen.items() if d},
                "outputs": outputs,
                "validation": validation,
            }
        )
    except ValueError as exc:
        raise ValidationFailed(f"This enrichment cannot be set up: {exc}", fields={"form": [str(exc)]}) from None
    return columns.create_enrichment_column(workspace, actor, table, setup)


def add_output_column(workspace: Workspace, actor: Actor, table: Table, column: Column, field: str) -> Column:
    """Write one more returned field of an enrichment column into a new typed column of its own."""
    setup = columns.setup_of(column)
    if "steps" not in setup:
        raise ValidationFailed("This column's setup is incomplete; open its settings and save them again.")
    if any(out["field"] == field for out in setup.get("outputs") or []):
        raise ValidationFailed("That field already has a column.", fields={"field": ["already a column"]})
    labels = {}
    for step in setup["steps"]:
        shape = columns.step_shape(Step.model_validate(step))
        labels.update({spec.name: spec.label for spec in shape.op.outputs if spec.name in shape.outputs})
        labels.update({name: name.replace("_", " ").capitalize() for name in shape.outputs if name not in labels})
    if field not in labels:
        raise ValidationFailed(f"This column returns no field “{field}”.", fields={"field": ["unknown"]})
    outputs = [{"field": o["field"], "column_id": o["column_id"]} for o in setup.get("outputs") or []]
    outputs.append({"field": field, "new_column": free_name(table, labels[field])})
    payload = {k: v for k, v in setup.items() if k in ColumnSetup.model_fields}
    payload["outputs"] = outputs
    return columns.update_enrichment_column(workspace, actor, table, column.id, ColumnSetup.model_validate(payload))


def returned_fields(column: Column) -> list[tuple[str, str, int | None]]:
    """Every field the column's steps return: (name, label, the column it is written into or None)."""
    setup = columns.setup_of(column)
    written = {o["field"]: o["column_id"] for o in setup.get("outputs") or []}
    found: dict[str, str] = {}
    for step in setup.get("steps") or []:
        try:
            shape = columns.step_shape(Step.model_validate(step))
        except ValidationFailed:
            continue
        for spec in shape.op.outputs:
            if spec.name in shape.outputs:
                found.setdefault(spec.name, spec.label)
        for name in shape.outputs:
            found.setdefault(name, name.replace("_", " ").capitalize())
    return [(name, label, written.get(name)) for name, label in found.items()]


# --- runs over the first rows, the rest, the empty rows ----------------------------------------------


def _ordered_ids(table: Table, *, offset: int, limit: int) -> list[int]:
    rows = storage.storage_for(table).rows
    return list(db.session.scalars(sa.select(rows.c.id).order_by(rows.c.pos).offset(offset).limit(limit)))


def run_scope(workspace: Workspace, actor: Actor, table: Table, which: str) -> tuple[str, list[int] | None]:
    """The service scope of a panel choice: the first 10 rows, the rest of them, or the empty rows."""
    tables.get_table_or_404(workspace, table.id)
    if which == "first":
        return "selected", _ordered_ids(table, offset=0, limit=FIRST_ROWS) or None
    if which in ("rest", "empty", "all"):
        return which, None
    raise ValidationFailed("Run on the first rows, the rest or the empty rows.", fields={"rows": ["unknown"]})


def estimate(workspace: Workspace, actor: Actor, table: Table, column: Column, which: str) -> Estimate | None:
    """The run service's estimate for a panel choice (None when there is no row to run on)."""
    scope, row_ids = run_scope(workspace, actor, table, which)
    if scope == "selected" and not row_ids:
        return None
    return _run_service().estimate_run(workspace, table, column, scope=scope, row_ids=row_ids)


def start(
    workspace: Workspace, actor: Actor, table: Table, column: Column, which: str, *, confirm: bool = False
) -> EnrichmentRun:
    """Start a run for a panel choice."""
    scope, row_ids = run_scope(workspace, actor, table, which)
    if scope == "selected" and not row_ids:
        raise ValidationFailed("There are no rows to enrich.", fields={"rows": ["no rows"]})
    return _run_service().start_run(workspace, actor, table, column, scope=scope, row_ids=row_ids, confirm=confirm)


def http_previews(
    workspace: Workspace, actor: Actor, table: Table, values: Mapping[str, str]
) -> dict[int, dict[str, str]]:
    """The request each generic HTTP step of the setup form would send for the table's first row.

    ``values`` are the form's fields; the step's ``{{name}}`` inputs take the first row's cells of the
    columns the form maps them to (and their derived parts), as the run will.
    """
    from morket.enrichment.forms import HTTP_OPERATION, http_options
    from morket.providers import http_request

    steps = [i for i in range(1, MAX_STEPS + 1) if values.get(f"step_{i}") == HTTP_OPERATION]
    if not steps:
        return {}
    sample = sample_table(workspace, actor, table, limit=1)
    row = sample.rows[0][1] if sample.rows else {}
    previews: dict[int, dict[str, str]] = {}
    for i in steps:
        options = http_options(values, i)
        inputs: dict[str, Any] = {}
        for name in http_request.template_inputs(options):
            column_raw, _, derivation = (values.get(f"in_{name}") or "").partition(":")
            if column_raw.isdigit():
                value = _cell_text(row.get(int(column_raw)))
                inputs[name] = mapping.derive_input(derivation or None, value) if value not in (None, "") else None
        body = options.get("body") or ""
        previews[i] = {
            "method": options["method"],
            "url": http_request.render_url(options["url"], inputs) if options["url"] else "",
            "body": http_request.render_body(body, inputs, body.lstrip().startswith(("{", "["))) if body else "",
            "row": "the first row" if sample.rows else "",
        }
    return previews
