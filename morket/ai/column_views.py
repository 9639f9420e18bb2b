"""Pages of AI columns: set one up (from the enrichment catalogue's "AI" card), try it on 5 rows, run it.

``/w/<slug>/tables/<id>/ai/new`` and ``…/ai/<column id>`` are whole pages that work without
JavaScript; the run's progress is a fragment that polls itself while the run is open. Model output is
only ever shown through Jinja's autoescape (prompts, answers, reasons).
"""

from __future__ import annotations

from typing import Any

from flask import flash, make_response, redirect, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from morket.ai import bp, budget, column_runs, columns, outputs
from morket.core.errors import MorketError
from morket.core.htmx import render_page_or_fragment
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db
from morket.runs.models import Run
from morket.tables import service as tables
from morket.tables.models import Column, Table

BASE = "/w/<slug>/tables/<int:table_id>/ai"
# The setup of a new AI column inside the enrichment drawer (the catalogue's "AI" card opens it).
PANEL_FRAGMENT = "ai/_panel_column.html"
SCOPE_LABELS = {"all": "Every row", "empty": "Only rows without an answer"}


def _models(workspace: Workspace) -> list[Any]:
    from morket.ai import service as ai_service

    return ai_service.list_models(workspace)


def _choice_value(endpoint_id: int | None, model: str | None) -> str:
    return f"{endpoint_id or ''}|{model or ''}"


def setup_from_form(form: MultiDict[str, str]) -> columns.AiSetup:
    """The page's fields as an ``AiSetup`` (options one per line, fields as ``name: type`` lines)."""
    endpoint_raw, _, model = (form.get("model_choice") or "|").partition("|")
    fields = []
    for line in (form.get("fields") or "").splitlines():
        name, _, kind = line.partition(":")
        if name.strip():
            fields.append({"name": name.strip(), "type": (kind.strip() or "text").lower()})
    data = {
        "name": form.get("name", ""),
        "prompt": form.get("prompt", ""),
        "system": form.get("system", ""),
        "endpoint_id": int(endpoint_raw) if endpoint_raw.strip().isdigit() else None,
        "model": model.strip() or None,
        "temperature": form.get("temperature") or 0,
        "max_tokens": form.get("max_tokens") or columns.DEFAULT_MAX_TOKENS,
        "output_type": form.get("output_type") or "text",
        "options": [o for o in (form.get("options") or "").splitlines() if o.strip()],
        "fields": fields,
        "research_steps": form.get("research_steps") or columns.RESEARCH_STEPS,
        "research_pages": form.get("research_pages") or columns.RESEARCH_PAGES,
    }
    return columns.parse_setup(data)


def _values_of(column: Column | None) -> dict[str, str]:
    if column is None:
        return {"name": "AI", "prompt": "", "system": "", "temperature": "0", "max_tokens": "256",
                "output_type": "text", "options": "", "fields": "", "model_choice": "",
                "research_steps": str(columns.RESEARCH_STEPS),
                "research_pages": str(columns.RESEARCH_PAGES)}  # fmt: skip
    setup = columns.setup_of(column)
    return {
        "name": column.name,
        "prompt": setup.get("prompt", ""),
        "system": setup.get("system", ""),
        "temperature": str(setup.get("temperature", 0)),
        "max_tokens": str(setup.get("max_tokens", columns.DEFAULT_MAX_TOKENS)),
        "output_type": setup.get("output_type", "text"),
        "options": "\n".join(setup.get("options") or []),
        "fields": "\n".join(f"{f['name']}: {f['type']}" for f in setup.get("fields") or []),
        "model_choice": _choice_value(setup.get("endpoint_id"), setup.get("model")),
        "research_steps": str(setup.get("research_steps", columns.RESEARCH_STEPS)),
        "research_pages": str(setup.get("research_pages", columns.RESEARCH_PAGES)),
    }


def _runs_of(workspace: Workspace, column: Column) -> list[Run]:
    from sqlalchemy import select

    return list(
        db.session.scalars(
            select(Run)
            .where(Run.workspace_id == workspace.id, Run.column_id == column.id, Run.kind == "ai")
            .order_by(Run.id.desc())
            .limit(5)
        )
    )


def _page(
    workspace: Workspace,
    membership: Member,
    table: Table,
    column: Column | None,
    values: dict[str, str],
    *,
    error: str | None = None,
    run_error: str | None = None,
    status: int = 200,
):
    context: dict[str, Any] = {}
    if column is not None:
        context["tried"] = column_runs.latest_try(workspace, column)
        try:
            context["estimate"] = column_runs.estimate(workspace, table, column)
        except MorketError as exc:
            context["estimate"], run_error = None, run_error or exc.message
        context["runs"] = [column_runs.progress(r) for r in _runs_of(workspace, column)]
    try:
        models = _models(workspace)
    except MorketError:
        models = []
    return render_page_or_fragment(
        "ai/column.html",
        status,
        workspace=workspace,
        membership=membership,
        table=table,
        column=column,
        values=values,
        error=error,
        run_error=run_error,
        models=models,
        choice_value=_choice_value,
        output_types=outputs.OUTPUT_TYPES,
        field_types=outputs.FIELD_TYPES,
        inputs=[c for c in table.live_columns if column is None or c.id != column.id],
        scope_labels=SCOPE_LABELS,
        monthly_limit=budget.monthly_limit(workspace.id),
        month_spent=budget.month_spent(workspace.id),
        **context,
    )


def _panel(
    workspace: Workspace,
    membership: Member,
    table: Table,
    values: dict[str, str],
    *,
    error: str | None = None,
    status: int = 200,
):
    """A new AI column's setup in the enrichment drawer; without htmx, the drawer's panel as a page."""
    try:
        models = _models(workspace)
    except MorketError:
        models = []
    return render_page_or_fragment(
        "enrichment/panel.html",
        status,
        hx_fragment=PANEL_FRAGMENT,
        fragment=PANEL_FRAGMENT,
        workspace=workspace,
        membership=membership,
        table=table,
        values=values,
        error=error,
        models=models,
        choice_value=_choice_value,
        output_types=outputs.OUTPUT_TYPES,
        field_types=outputs.FIELD_TYPES,
        inputs=list(table.live_columns),
    )


def _column_url(workspace: Workspace, table: Table, ai_column_id: int) -> str:
    return url_for("ai.column_page", slug=workspace.slug, table_id=table.id, ai_column_id=ai_column_id)


@bp.get(f"{BASE}/new")
@workspace_page("enrichment.run")
def new_column(workspace: Workspace, membership: Member, table_id: int):
    """The setup page of a new AI column."""
    table = tables.get_table_or_404(workspace, table_id)
    return _page(workspace, membership, table, None, _values_of(None))


@bp.get(f"{BASE}/panel")
@workspace_page("enrichment.run")
def panel_new_column(workspace: Workspace, membership: Member, table_id: int):
    """A new AI column's setup in the enrichment drawer (the page ``/ai/new`` is the fuller form)."""
    table = tables.get_table_or_404(workspace, table_id)
    return _panel(workspace, membership, table, _values_of(None))


@bp.post(f"{BASE}/new")
@workspace_page("enrichment.run")
def create_column(workspace: Workspace, membership: Member, table_id: int):
    """Save a new AI column; then its page, where it is tried and run.

    From the drawer (``panel``) a refusal is shown in the drawer and htmx is sent on to the page.
    """
    table = tables.get_table_or_404(workspace, table_id)
    from_panel = request.form.get("panel") == "1"
    try:
        column = columns.create_ai_column(workspace, current_user, table, setup_from_form(request.form))
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        values = {**_values_of(None), **request.form.to_dict()}
        if from_panel:
            return _panel(workspace, membership, table, values, error=exc.message, status=exc.status)
        return _page(workspace, membership, table, None, dict(request.form), error=exc.message, status=exc.status)
    ai_column_id, name = column.id, column.name
    db.session.commit()
    flash(f"Added the AI column “{name}”. Try it on the first rows, then run it.", "success")
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = _column_url(workspace, table, ai_column_id)
        return response
    return redirect(_column_url(workspace, table, ai_column_id), 303)


@bp.get(f"{BASE}/<int:ai_column_id>")
@workspace_page("enrichment.view")
def column_page(workspace: Workspace, membership: Member, table_id: int, ai_column_id: int):
    """An AI column: its setup, its last try, the estimate, its runs."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_ai_column_or_404(workspace, table, ai_column_id)
    return _page(workspace, membership, table, column, _values_of(column))


@bp.post(f"{BASE}/<int:ai_column_id>")
@workspace_page("enrichment.run")
def update_column(workspace: Workspace, membership: Member, table_id: int, ai_column_id: int):
    """Save an AI column's changed setup."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_ai_column_or_404(workspace, table, ai_column_id)
    try:
        saved = columns.update_ai_column(workspace, current_user, table, column.id, setup_from_form(request.form))
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        column = columns.get_ai_column_or_404(workspace, table, ai_column_id)
        return _page(workspace, membership, table, column, dict(request.form), error=exc.message, status=exc.status)
    name = saved.name
    db.session.commit()
    message = f"Saved the AI column “{name}”. Cells already answered keep their answers; run it to fill the rest."
    flash(message, "success")
    return redirect(_column_url(workspace, table, ai_column_id), 303)


@bp.post(f"{BASE}/<int:ai_column_id>/try")
@workspace_page("enrichment.run")
def try_column(workspace: Workspace, membership: Member, table_id: int, ai_column_id: int):
    """Ask the model for the first 5 rows and show prompts, answers and cost (nothing is written to cells)."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_ai_column_or_404(workspace, table, ai_column_id)
    try:
        column_runs.try_rows(workspace, current_user, table, column)
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        column = columns.get_ai_column_or_404(workspace, table, ai_column_id)
        return _page(workspace, membership, table, column, _values_of(column), run_error=exc.message, status=exc.status)
    db.session.commit()
    return redirect(_column_url(workspace, table, ai_column_id) + "#try", 303)


@bp.post(f"{BASE}/<int:ai_column_id>/runs")
@workspace_page("enrichment.run")
def start_run(workspace: Workspace, membership: Member, table_id: int, ai_column_id: int):
    """Start a run over every row (or the rows without an answer) with a hard budget."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_ai_column_or_404(workspace, table, ai_column_id)
    try:
        column_runs.start_run(workspace, current_user, table, column, scope=request.form.get("scope") or "all",
                              budget_credits=request.form.get("budget_credits") or None)  # fmt: skip
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        column = columns.get_ai_column_or_404(workspace, table, ai_column_id)
        return _page(workspace, membership, table, column, _values_of(column), run_error=exc.message, status=exc.status)
    db.session.commit()
    return redirect(_column_url(workspace, table, ai_column_id) + "#runs", 303)


def _run_fragment(workspace: Workspace, membership: Member, run: Run, status: int = 200, error: str | None = None):
    return render_page_or_fragment(
        "ai/_column_run.html",
        status,
        workspace=workspace,
        membership=membership,
        run=column_runs.progress(run),
        error=error,
    )


@bp.get("/w/<slug>/ai/runs/<int:ai_run_id>")
@workspace_page("enrichment.view")
def run_progress(workspace: Workspace, membership: Member, ai_run_id: int):
    """One run's progress (the fragment polls itself while the run is open)."""
    return _run_fragment(workspace, membership, column_runs.get_run_or_404(workspace, ai_run_id))


@bp.post("/w/<slug>/ai/runs/<int:ai_run_id>/cancel")
@workspace_page("enrichment.run")
def cancel_run(workspace: Workspace, membership: Member, ai_run_id: int):
    run = column_runs.get_run_or_404(workspace, ai_run_id)
    try:
        column_runs.cancel_run(workspace, current_user, run)
    except MorketError as exc:
        db.session.rollback()
        return _run_fragment(
            workspace, membership, column_runs.get_run_or_404(workspace, ai_run_id), exc.status, exc.message
        )
    db.session.commit()
    return _after_run_change(workspace, membership, ai_run_id)


@bp.post("/w/<slug>/ai/runs/<int:ai_run_id>/budget")
@workspace_page("enrichment.run")
def raise_budget(workspace: Workspace, membership: Member, ai_run_id: int):
    run = column_runs.get_run_or_404(workspace, ai_run_id)
    try:
        column_runs.raise_budget(workspace, current_user, run, request.form.get("budget_credits") or None)
    except MorketError as exc:
        db.session.rollback()
        return _run_fragment(
            workspace, membership, column_runs.get_run_or_404(workspace, ai_run_id), exc.status, exc.message
        )
    db.session.commit()
    return _after_run_change(workspace, membership, ai_run_id)


def _after_run_change(workspace: Workspace, membership: Member, ai_run_id: int):
    run = column_runs.get_run_or_404(workspace, ai_run_id)
    if request.headers.get("HX-Request") == "true":
        return _run_fragment(workspace, membership, run)
    return redirect(
        url_for("ai.column_page", slug=workspace.slug, table_id=run.table_id, ai_column_id=run.column_id), 303
    )


@bp.post("/w/<slug>/ai/budget")
@workspace_page("ai.manage")
def set_budget(workspace: Workspace, membership: Member):
    """Set or clear the workspace's monthly AI budget (owners and admins)."""
    raw = (request.form.get("monthly_credits") or "").strip()
    back = request.form.get("next") or url_for("workspaces.dashboard", slug=workspace.slug)
    try:
        value = int(raw) if raw else None
    except ValueError:
        value = -1
    try:
        budget.set_monthly_limit(workspace, current_user, value)
    except MorketError as exc:
        db.session.rollback()
        from flask import flash

        flash(exc.message, "error")
        return redirect(_safe(back), 303)
    db.session.commit()
    return redirect(_safe(back), 303)


def _safe(url: str) -> str:
    from morket.core.web import safe_next

    return safe_next(url) or "/"
