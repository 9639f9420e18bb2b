"""Enrichment pages: column setup, the estimate and start of a run, the runs list, a run's page and progress.

Every write parses its form, calls one service and commits once. The run page polls its progress
partial every second; the partial answers 286 once the run is over so that htmx stops polling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import flash, make_response, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select

from morket.core.errors import MorketError, ValidationFailed
from morket.core.htmx import add_toast, render_page_or_fragment, wants_fragment
from morket.core.ratelimit import GRID_LIMIT
from morket.core.tenancy import workspace_page
from morket.core.text import plural
from morket.core.types import Member, Workspace
from morket.enrichment import bp, catalogue, columns, forms, mapping, panel_service
from morket.enrichment.config import CELL_STATE_LABELS, read_config
from morket.enrichment.models import EnrichmentAttempt, EnrichmentRun
from morket.extensions import db, limiter
from morket.tables import service as tables
from morket.tables.models import Column, Table

SETUP = "/w/<slug>/tables/<int:table_id>/enrichment"
RUN_STATUS_LABELS = {
    "queued": "Waiting for a worker",
    "running": "Running",
    "paused": "Paused",
    "completed": "Completed",
    "cancelled": "Cancelled",
    "failed": "Failed",
}
SCOPE_LABELS = {
    "all": "all rows",
    "empty": "empty rows",
    "selected": "selected rows",
    "auto": "new and changed rows",
    "rest": "the rest of the rows",
}
MAX_SELECTED = 10_000
RUNS_PAGE = 100


def _engine():  # the run engine's service module
    from morket.enrichment import service

    return service


def _balance(workspace: Workspace) -> int | None:
    from morket.credits import service as credits

    return credits.balance(workspace.id)


@bp.context_processor
def _labels() -> dict[str, Any]:
    return {"state_labels": CELL_STATE_LABELS, "status_labels": RUN_STATUS_LABELS, "scope_labels": SCOPE_LABELS}


def go(location: str):
    """Redirect a form post, or tell htmx to navigate there."""
    if request.headers.get("HX-Request") == "true":
        resp = make_response("", 204)
        resp.headers["HX-Redirect"] = location
        return resp
    return redirect(location, 303)


# --- column setup ------------------------------------------------------------------------------------


def _setup_page(
    workspace: Workspace,
    membership: Member,
    table: Table,
    form: forms.SetupForm,
    *,
    column: Column | None,
    status: int = 200,
):
    return render_page_or_fragment(
        "enrichment/setup.html",
        status,
        workspace=workspace,
        membership=membership,
        table=table,
        column=column,
        form=form,
        condition_operators=forms.CONDITION_OPERATORS,
        http_previews=panel_service.http_previews(workspace, current_user, table, form.values),
    )


def _submit(workspace: Workspace, membership: Member, table: Table, column: Column | None):
    catalogue = columns.operations()
    self_id = column.id if column is not None else None
    if request.form.get("refresh"):
        form = forms.describe(table, catalogue, request.form, self_id=self_id)
        return _setup_page(workspace, membership, table, form, column=column)
    try:
        setup = forms.setup_from_form(request.form, catalogue)
        if column is None:
            saved = columns.create_enrichment_column(workspace, current_user, table, setup)
        else:
            saved = columns.update_enrichment_column(workspace, current_user, table, column.id, setup)
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table.id)
        column = columns.get_enrichment_column_or_404(workspace, table, self_id) if self_id else None
        form = forms.describe(table, catalogue, request.form, error=exc.message, errors=exc.fields, self_id=self_id)
        return _setup_page(workspace, membership, table, form, column=column, status=exc.status)
    saved_id = saved.id
    if column is not None:  # the grid it lands on offers its Undo in the toast
        flash(f"Saved “{saved.name}”: its next run uses the new setup; found values are kept.", "undo")
    db.session.commit()
    return go(url_for("tables.grid", slug=workspace.slug, table_id=table.id, enriched=saved_id))


@bp.get(f"{SETUP}/new")
@workspace_page("enrichment.run")
def new_column(workspace: Workspace, membership: Member, table_id: int):
    """The setup page of a new enrichment column (optionally started from a preset)."""
    table = tables.get_table_or_404(workspace, table_id)
    catalogue = columns.operations()
    values = forms.values_from_preset(request.args.get("preset", ""), table, {op.key: op for op in catalogue})
    if request.args.get("step_1") == forms.HTTP_OPERATION:
        values = {"name": "API call", "step_1": forms.HTTP_OPERATION}
    return _setup_page(workspace, membership, table, forms.describe(table, catalogue, values), column=None)


@bp.post(SETUP)
@workspace_page("enrichment.run")
def create_column(workspace: Workspace, membership: Member, table_id: int):
    """Save a new enrichment column, or re-render the form for the chosen steps (``refresh``)."""
    return _submit(workspace, membership, tables.get_table_or_404(workspace, table_id), None)


@bp.get(f"{SETUP}/<int:column_id>")
@workspace_page("enrichment.run")
def edit_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """The setup page of an existing enrichment column."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    values = forms.values_from_column(column, columns.setup_of(column))
    form = forms.describe(table, columns.operations(), values, self_id=column.id)
    return _setup_page(workspace, membership, table, form, column=column)


@bp.post(f"{SETUP}/<int:column_id>")
@workspace_page("enrichment.run")
def update_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """Save an enrichment column's changed setup."""
    table = tables.get_table_or_404(workspace, table_id)
    return _submit(workspace, membership, table, columns.get_enrichment_column_or_404(workspace, table, column_id))


# --- estimate and start ------------------------------------------------------------------------------


def _row_ids(raw: str) -> list[int] | None:
    parts = [p for p in raw.replace(" ", "").split(",") if p]
    if not parts:
        return None
    if len(parts) > MAX_SELECTED or any(not p.isdigit() or len(p) > 18 for p in parts):
        raise ValidationFailed(f"Select 1 to {MAX_SELECTED:,} rows.", fields={"row_ids": ["bad selection"]})
    return sorted({int(p) for p in parts})


def _scope() -> tuple[str, list[int] | None]:
    scope = request.values.get("scope", "all")
    if scope not in ("all", "empty", "selected"):
        raise ValidationFailed("Run on all rows, empty rows or the selected rows.", fields={"scope": ["unknown"]})
    row_ids = _row_ids(request.values.get("row_ids", "")) if scope == "selected" else None
    if scope == "selected" and not row_ids:
        raise ValidationFailed("Select the rows to enrich first.", fields={"row_ids": ["none selected"]})
    return scope, row_ids


def _estimate(
    workspace: Workspace,
    membership: Member,
    table_id: int,
    column_id: int,
    *,
    error: str | None = None,
    status: int = 200,
):
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    scope, row_ids = _scope()
    estimate = _engine().estimate_run(workspace, table, column, scope=scope, row_ids=row_ids)
    return render_page_or_fragment(
        "enrichment/estimate.html",
        status,
        hx_fragment="enrichment/_estimate.html",
        workspace=workspace,
        membership=membership,
        table=table,
        column=column,
        scope=scope,
        row_ids=",".join(str(r) for r in row_ids or []),
        estimate=estimate,
        balance=_balance(workspace),
        error=error,
        in_popover=wants_fragment(),
    )


@bp.get(f"{SETUP}/<int:column_id>/estimate")
@workspace_page("enrichment.run")
def estimate(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """What a run would cost (rows, credits at most, the balance) and the button that starts it."""
    try:
        return _estimate(workspace, membership, table_id, column_id)
    except ValidationFailed as exc:
        return render_page_or_fragment("enrichment/_message.html", exc.status, message=exc.message)


@bp.post(f"{SETUP}/<int:column_id>/runs")
@workspace_page("enrichment.run")
def start_run(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """Start a run; above the confirmation threshold the form must carry ``confirm``."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    try:
        scope, row_ids = _scope()
        run = _engine().start_run(
            workspace,
            current_user,
            table,
            column,
            scope=scope,
            row_ids=row_ids,
            confirm=request.form.get("confirm") == "1",
        )
    except MorketError as exc:
        db.session.rollback()
        try:
            return _estimate(workspace, membership, table_id, column_id, error=exc.message, status=exc.status)
        except ValidationFailed as bad:
            return render_page_or_fragment("enrichment/_message.html", bad.status, message=bad.message)
    run_id, started = run.id, _started_message(run)
    db.session.commit()
    flash(started, "success")
    return go(url_for("enrichment.run_page", slug=workspace.slug, run_id=run_id))


def _started_message(run: EnrichmentRun) -> str:
    return f"Run started on {plural(run.total, 'row')}: charged only for values found."


def _finished_message(run: EnrichmentRun) -> tuple[str, str]:
    """The toast for a run that just ended: what it found and charged, or why it stopped."""
    if run.status == "failed":
        return f"The run stopped: {run.pause_reason or 'see the run page'}", "error"
    if run.status == "cancelled":
        return f"Run cancelled after {plural(run.done, 'row')}.", "info"
    found = f"{run.succeeded:,} of {plural(run.total, 'row')}"
    return f"Run finished: values found for {found}, {plural(run.credits_used, 'credit')} charged.", "success"


# --- runs ---------------------------------------------------------------------------------------------


def _names(workspace: Workspace, runs: list[EnrichmentRun]) -> dict[str, dict[int, str]]:
    """Table and column names of the runs, in two small queries."""
    table_ids = {r.table_id for r in runs}
    column_ids = {r.column_id for r in runs}
    found: dict[str, dict[int, str]] = {"tables": {}, "columns": {}}
    if table_ids:
        rows = db.session.execute(
            select(Table.id, Table.name).where(Table.workspace_id == workspace.id, Table.id.in_(table_ids))
        )
        found["tables"] = {i: n for i, n in rows}
    if column_ids:
        rows = db.session.execute(
            select(Column.id, Column.name).where(Column.workspace_id == workspace.id, Column.id.in_(column_ids))
        )
        found["columns"] = {i: n for i, n in rows}
    return found


@bp.get("/w/<slug>/runs")
@workspace_page("enrichment.view")
def runs(workspace: Workspace, membership: Member):
    """Every enrichment run of the workspace, newest first."""
    found = _engine().list_runs(workspace, limit=RUNS_PAGE)
    return render_page_or_fragment(
        "enrichment/runs.html", workspace=workspace, membership=membership, runs=found, names=_names(workspace, found)
    )


def _value_price(workspace: Workspace, run: EnrichmentRun) -> str | None:
    """What one delivered value of the run costs ("3", or "2–3" when steps differ), for the page."""
    try:
        prices = _engine().value_prices(workspace, read_config(run.config))
    except (MorketError, ValueError):
        return None
    low, high = min(prices), max(prices)
    return str(low) if low == high else f"{low}–{high}"


def _run_context(workspace: Workspace, run: EnrichmentRun) -> dict[str, Any]:
    names = _names(workspace, [run])
    return {
        "run": run,
        "value_price": _value_price(workspace, run),
        "progress": _engine().run_progress(run),
        "table_name": names["tables"].get(run.table_id, "a deleted table"),
        "column_name": names["columns"].get(run.column_id, "a deleted column"),
    }


@bp.get("/w/<slug>/runs/<int:run_id>")
@workspace_page("enrichment.view")
def run_page(workspace: Workspace, membership: Member, run_id: int):
    """One run: its progress bar (live until it ends), counters, credits used and latest attempts."""
    run = _engine().get_run_or_404(workspace, run_id)
    attempts = list(
        db.session.scalars(
            select(EnrichmentAttempt)
            .where(EnrichmentAttempt.workspace_id == workspace.id, EnrichmentAttempt.run_id == run.id)
            .order_by(EnrichmentAttempt.id.desc())
            .limit(50)
        )
    )
    return render_page_or_fragment(
        "enrichment/run.html",
        workspace=workspace,
        membership=membership,
        attempts=attempts,
        balance=_balance(workspace),
        **_run_context(workspace, run),
    )


@bp.get("/w/<slug>/runs/<int:run_id>/progress")
@workspace_page("enrichment.view")
@limiter.limit(GRID_LIMIT)
def run_progress(workspace: Workspace, membership: Member, run_id: int):
    """The progress partial; 286 once the run is over tells htmx to stop polling."""
    run = _engine().get_run_or_404(workspace, run_id)
    resp = render_page_or_fragment(
        "enrichment/_progress.html",
        286 if run.finished else 200,
        workspace=workspace,
        membership=membership,
        balance=_balance(workspace),
        **_run_context(workspace, run),
    )
    resp.headers["Cache-Control"] = "no-store"
    if run.finished:
        # Polling stops with this answer, so the page hears of the end once.
        add_toast(resp, *_finished_message(run))
    return resp


@bp.post("/w/<slug>/runs/<int:run_id>/cancel")
@workspace_page("enrichment.run")
def cancel_run(workspace: Workspace, membership: Member, run_id: int):
    """Cancel a run: rows not yet done are marked cancelled and cost nothing."""
    engine = _engine()
    run = engine.get_run_or_404(workspace, run_id)
    try:
        engine.cancel_run(workspace, current_user, run)
    except MorketError as exc:
        db.session.rollback()
        return render_page_or_fragment("enrichment/_message.html", exc.status, message=exc.message)
    db.session.commit()
    return go(url_for("enrichment.run_page", slug=workspace.slug, run_id=run_id))


@bp.get(f"{SETUP}/active")
@workspace_page("enrichment.view")
@limiter.limit(GRID_LIMIT)
def active_runs(workspace: Workspace, membership: Member, table_id: int):
    """The table's unfinished runs above the grid; polled while any runs (286 once none is left)."""
    table = tables.get_table_or_404(workspace, table_id)
    active = [r for r in _engine().list_runs(workspace, table_id=table.id, limit=20) if not r.finished]
    resp = render_page_or_fragment(
        "enrichment/_active.html",
        200 if active else 286,
        workspace=workspace,
        table=table,
        runs=active,
        names=_names(workspace, active),
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


# --- a cell's attempts ----------------------------------------------------------------------------------


@bp.get(f"{SETUP}/<int:column_id>/rows/<int:row_id>/attempts")
@workspace_page("enrichment.view")
@limiter.limit(GRID_LIMIT)
def cell_attempts(workspace: Workspace, membership: Member, table_id: int, column_id: int, row_id: int):
    """Every provider attempt made for one cell, newest first (shown in the row panel)."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    row = tables.get_row(workspace, current_user, table, row_id)
    attempts = _engine().list_attempts(workspace, row_id=row.id, column_id=column.id)
    state = (row.cell_state or {}).get(str(column.id)) or {}
    return render_page_or_fragment(
        "enrichment/_attempts.html",
        workspace=workspace,
        table=table,
        column=column,
        row=row,
        state=state,
        attempts=attempts[:50],
        operation_labels={op.key: op.label for op in columns.operations()},
        http_requests=_row_requests(workspace, table, column, row),
        page=_page_fetched(attempts),
    )


def _row_requests(workspace: Workspace, table: Table, column: Column, row: Any) -> list[Any]:
    """The request each HTTP step of the column sends for this row (secrets masked), as the drawer previews it."""
    from morket.enrichment import http_panel, panel_forms

    values = forms.values_from_column(column, columns.setup_of(column))
    steps = panel_forms.steps_of(values)
    cells = row.values(table)
    return [
        http_panel.preview(workspace, current_user, table, panel_forms.card_form(values, i), row=cells)
        for i, step in enumerate(steps, start=1)
        if step["step"] == forms.HTTP_OPERATION
    ]


def _page_fetched(attempts: list[EnrichmentAttempt]) -> dict[str, Any] | None:
    """The website scrape's latest answer for the cell: the page read, its status, or why it was not read."""
    from morket.providers.website import PAGE_READ, SCRAPE

    found = next((a for a in attempts if a.operation == SCRAPE.key and a.outcome != "pending"), None)
    if found is None:
        return None
    note = found.message or ""
    read = found.outcome == "hit" and note.startswith(PAGE_READ)
    return {
        "outcome": found.outcome,
        "status": found.http_status,
        "final_url": note[len(PAGE_READ) :] if read else None,
        "reason": None if found.outcome == "hit" else note or found.outcome.replace("_", " "),
        "latency_ms": found.latency_ms,
    }


# --- the panel beside the grid ----------------------------------------------------------------------
# An htmx-loaded drawer over the grid (static/js/enrichment.js opens it from the toolbar's Enrich
# button, a column header's run control or menu, and enrichment cells); without JavaScript every
# panel URL answers a whole page.

PANEL = f"{SETUP}/panel"
RUN_CHOICES = {"first": "Run on the first 10 rows", "rest": "Run on the rest", "empty": "Run on empty rows only"}


def render_panel(fragment: str, status: int = 200, **context: Any):
    """The panel fragment for the drawer, or the same fragment inside a page."""
    return render_page_or_fragment("enrichment/panel.html", status, hx_fragment=fragment, fragment=fragment, **context)


def panel_base(workspace: Workspace, membership: Member, table: Table) -> dict[str, Any]:
    return {
        "workspace": workspace,
        "membership": membership,
        "table": table,
        "categories": catalogue.CATEGORIES,
        "role_labels_by_role": mapping.ROLE_LABELS,
    }


@bp.get(PANEL)
@workspace_page("enrichment.run")
def panel(workspace: Workspace, membership: Member, table_id: int):
    """The catalogue: every enrichment with what it needs, returns and costs, searchable by category."""
    table = tables.get_table_or_404(workspace, table_id)
    query, category = request.args.get("q", "")[:100], request.args.get("category", "")
    if category not in catalogue.CATEGORIES:
        category = ""
    found = catalogue.filter_cards(panel_service.cards(workspace), query, category)
    template = "enrichment/_panel_cards.html" if request.args.get("cards") == "1" else "enrichment/_panel.html"
    return render_panel(
        template, cards=found, query=query, category=category, **panel_base(workspace, membership, table)
    )


def _chosen(
    form: Mapping[str, str], card: catalogue.Card, roles: dict[int, str], table: Table
) -> dict[str, tuple[int, str | None]]:
    """The inputs the form maps (``in_<input>``: "12" or "12:first_name"), else those mapped by meaning."""
    live = {c.id for c in table.live_columns}
    chosen: dict[str, tuple[int, str | None]] = {}
    resolved = {r.input: r for r in panel_service.resolve_card(card, roles)}
    for spec in card.needs:
        key = f"in_{spec.name}"
        if key in form:
            raw = form.get(key, "").strip()
        else:
            raw = forms.input_value(resolved[spec.name])
        if not raw:
            continue
        column_raw, _, derivation = raw.partition(":")
        if not column_raw.isdigit() or int(column_raw) not in live or derivation not in ("", *mapping.DERIVATIONS):
            raise ValidationFailed(f"{spec.label}: pick a column of this table.", fields={key: ["unknown column"]})
        chosen[spec.name] = (int(column_raw), derivation or None)
    return chosen


def _panel_setup(
    workspace: Workspace,
    membership: Member,
    table: Table,
    card: catalogue.Card,
    form: Mapping[str, str],
    *,
    error: str | None = None,
    status: int = 200,
):
    sample = panel_service.sample_table(workspace, current_user, table)
    try:
        chosen = _chosen(form, card, sample.roles, table)
    except ValidationFailed as exc:
        chosen, error, status = {}, exc.message, exc.status
    live = [c for c in table.live_columns if c.type not in ("formula", "enrichment", "ai")]
    names = {c.id: c.name for c in table.live_columns}
    picked = {name: (f"{cid}:{d}" if d else str(cid)) for name, (cid, d) in chosen.items()}
    choices = {
        spec.name: forms.input_choices(spec.name, spec.kind, live, sample.roles, picked.get(spec.name, ""))
        for spec in card.needs
    }
    fields = form.getlist("field") if hasattr(form, "getlist") else []
    return render_panel(
        "enrichment/_panel_setup.html",
        status,
        card=card,
        chosen=chosen,
        picked=picked,
        choices=choices,
        column_names=names,
        preview=panel_service.preview_inputs(sample, chosen, kinds={spec.name: spec.kind for spec in card.needs}),
        sample_count=min(len(sample.rows), panel_service.PREVIEW_ROWS),
        missing=panel_service.missing_inputs(card, chosen),
        name=form.get("name") or panel_service.free_name(table, card.name),
        target_column=form.get("target_column") == "1" if request.method == "POST" else True,
        extra_fields=set(fields),
        error=error,
        **panel_base(workspace, membership, table),
    )


@bp.get(f"{PANEL}/setup")
@workspace_page("enrichment.run")
def panel_setup(workspace: Workspace, membership: Member, table_id: int):
    """One card set up for this table: its inputs mapped by meaning, shown for the first rows, and its outputs."""
    table = tables.get_table_or_404(workspace, table_id)
    card = catalogue.find_card(panel_service.cards(workspace), request.args.get("card", ""))
    if card is None:
        # A bookmarked or stale setup link still names a page that exists: back to choosing a card.
        return redirect(url_for("enrichment.panel", slug=workspace.slug, table_id=table.id), 303)
    return _panel_setup(workspace, membership, table, card, request.args)


@bp.post(f"{PANEL}/setup")
@workspace_page("enrichment.run")
def panel_save(workspace: Workspace, membership: Member, table_id: int):
    """Save the card as a column (``refresh`` re-renders the setup for a changed mapping instead)."""
    table = tables.get_table_or_404(workspace, table_id)
    card = panel_service.get_card_or_404(workspace, request.form.get("card", ""))
    if request.form.get("refresh"):
        return _panel_setup(workspace, membership, table, card, request.form)
    try:
        sample = panel_service.sample_table(workspace, current_user, table)
        column = panel_service.create_from_card(
            workspace,
            current_user,
            table,
            card,
            name=request.form.get("name", "")[:120],
            chosen=_chosen(request.form, card, sample.roles, table),
            extra_fields=request.form.getlist("field"),
            target_column=request.form.get("target_column") == "1",
        )
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        return _panel_setup(workspace, membership, table, card, request.form, error=exc.message, status=exc.status)
    column_id = column.id
    db.session.commit()
    if request.headers.get("HX-Request") == "true":
        # The grid reloads to show the new columns, with the drawer open on the run choices.
        return go(url_for("tables.grid", slug=workspace.slug, table_id=table.id, enrich=column_id))
    return go(url_for("enrichment.panel_column", slug=workspace.slug, table_id=table.id, column_id=column_id))


def _panel_column(
    workspace: Workspace,
    membership: Member,
    table: Table,
    column: Column,
    *,
    run: EnrichmentRun | None = None,
    error: str | None = None,
    status: int = 200,
):
    estimates = {}
    for which in RUN_CHOICES:
        try:
            estimates[which] = panel_service.estimate(workspace, current_user, table, column, which)
        except ValidationFailed:
            estimates[which] = None
    return render_panel(
        "enrichment/_panel_column.html",
        status,
        column=column,
        estimates=estimates,
        choices=RUN_CHOICES,
        balance=_balance(workspace),
        fields=panel_service.returned_fields(column),
        column_names={c.id: c.name for c in table.live_columns},
        run=run,
        progress=_engine().run_progress(run) if run is not None else None,
        value_price=_value_price(workspace, run) if run is not None else None,
        error=error,
        **panel_base(workspace, membership, table),
    )


@bp.get(f"{SETUP}/<int:column_id>/panel")
@workspace_page("enrichment.run")
def panel_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """An enrichment column in the panel: run it on the first 10 rows, the rest or the empty rows; add fields."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    return _panel_column(workspace, membership, table, column)


@bp.post(f"{SETUP}/<int:column_id>/panel/runs")
@workspace_page("enrichment.run")
def panel_run(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """Start a run on the first 10 rows, the rest or the empty rows; the panel then shows its progress."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    which = request.form.get("rows", "")
    try:
        run = panel_service.start(
            workspace, current_user, table, column, which, confirm=request.form.get("confirm") == "1"
        )
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        column = columns.get_enrichment_column_or_404(workspace, table, column_id)
        return _panel_column(workspace, membership, table, column, error=exc.message, status=exc.status)
    db.session.commit()
    resp = _panel_column(workspace, membership, table, column, run=run)
    resp.headers["HX-Trigger"] = "enrichment-run-started"
    return add_toast(resp, _started_message(run))


@bp.post(f"{SETUP}/<int:column_id>/panel/fields")
@workspace_page("enrichment.run")
def panel_add_field(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """Write one more returned field of the column into a typed column of its own."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    try:
        panel_service.add_output_column(workspace, current_user, table, column, request.form.get("field", "")[:80])
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        column = columns.get_enrichment_column_or_404(workspace, table, column_id)
        return _panel_column(workspace, membership, table, column, error=exc.message, status=exc.status)
    db.session.commit()
    if request.headers.get("HX-Request") == "true":
        return go(url_for("tables.grid", slug=workspace.slug, table_id=table_id, enrich=column_id))
    return go(url_for("enrichment.panel_column", slug=workspace.slug, table_id=table_id, column_id=column_id))
