"""Column endpoints of the grid: the header menu, add, rename, retype, formula, move, width, hide, freeze, delete.

Each write parses its form, calls one service of ``column_service`` and commits once. htmx callers
get either a refresh of the page (the header layout changed) or, for jobs, the progress partial;
errors come back as a 422 partial with the message. Plain form posts are redirected to the grid.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup, escape

from morket.core.errors import MorketError, ValidationFailed
from morket.core.htmx import add_toast, render_page_or_fragment, wants_fragment
from morket.core.ratelimit import GRID_LIMIT
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db, limiter
from morket.tables import bp, column_service, lookups, number_format, service
from morket.tables.column_service import ColumnJob
from morket.tables.hooks import CELL_STATE_LABELS, MARKED_CELL_STATUSES
from morket.tables.models import COLUMN_TYPES, Column, Table, View

BASE = "/w/<slug>/tables/<int:table_id>/columns"
FORMAT_EXAMPLE = Decimal("1234.5")
TYPE_LABELS = {t: t.replace("_", " ").capitalize() for t in COLUMN_TYPES if t not in ("enrichment", "ai")}


def _view(workspace: Workspace, table: Table) -> View | None:
    raw = request.values.get("view_id") or request.values.get("view") or ""
    if not raw.strip():
        return None
    if not raw.isdigit():
        raise MorketError("That view does not exist.")
    return service.get_view_or_404(workspace, table, int(raw))


def _int(name: str, label: str) -> int:
    raw = (request.form.get(name) or "").strip()
    if not raw.lstrip("-").isdigit() or len(raw) > 9:
        raise MorketError(f"{label} must be a whole number.", fields={name: ["whole number"]})
    return int(raw)


def _done(workspace: Workspace, table: Table, message: str | None = None, *, undoable: bool = False) -> Any:
    """Commit and send the caller back to a refreshed grid (built first: the commit expires ``table``).

    ``message`` is flashed, so the refreshed page shows it as a toast (htmx callers reload through
    ``HX-Refresh``); an ``undoable`` one carries an "Undo" button (the "undo" flash category).
    """
    if message:
        flash(message, "undo" if undoable else "success")
    if wants_fragment():
        response = make_response("", 204)
        response.headers["HX-Refresh"] = "true"
    else:
        view = request.values.get("view_id")
        response = redirect(url_for("tables.grid", slug=workspace.slug, table_id=table.id, view=view or None))
    db.session.commit()
    return response


def _job_response(workspace: Workspace, table: Table, job: ColumnJob, message: str | None = None) -> Any:
    if wants_fragment():
        response = make_response(render_template("tables/_columns_job.html", workspace=workspace, table=table, job=job))
        if message:
            add_toast(response, message)
    else:
        if message:
            flash(message, "success")
        response = redirect(url_for("tables.grid", slug=workspace.slug, table_id=table.id))
    db.session.commit()
    return response


def _error(exc: MorketError) -> Any:
    db.session.rollback()
    response = make_response(render_template("tables/_columns_error.html", message=exc.message), exc.status)
    if not wants_fragment():
        response.headers["Content-Type"] = "text/html; charset=utf-8"
    return response


def _run(workspace: Workspace, table_id: int, action: Callable[[Table], Any], lock: str = "update") -> Any:
    """Load the table under its row lock (``update``: the columns change; ``share``: only a view does)."""
    try:
        table = service.get_table_or_404(workspace, table_id, lock=lock)
        return action(table)
    except MorketError as exc:
        return _error(exc)


@bp.get(f"{BASE}/new")
@workspace_page("tables.manage")
def new_column(workspace: Workspace, membership: Member, table_id: int):
    table = service.get_table_or_404(workspace, table_id)
    return render_template(
        "tables/_columns_add.html",
        workspace=workspace,
        table=table,
        types=TYPE_LABELS,
        lookup=lookups.settings_choices(workspace, table, {}),
    )


@bp.post(BASE)
@workspace_page("tables.manage")
def add_column(workspace: Workspace, membership: Member, table_id: int):
    def action(table: Table) -> Any:
        column_type = request.form.get("type", "text")
        config: dict[str, Any] = {}
        if column_type in ("single_select", "multi_select"):
            config["options"] = [o.strip() for o in request.form.get("options", "").split(",") if o.strip()]
        if column_type == "currency":
            config["currency"] = request.form.get("currency") or "USD"
        if column_type == "formula":
            config["expression"] = request.form.get("expression", "")
        if column_type == "lookup":
            config = lookups.form_config(request.form)
        # "Insert left/right" in a column's menu sends the 1-based place of the new column.
        index = _int("position", "Position") - 1 if (request.form.get("position") or "").strip() else None
        column, job = column_service.add_table_column(
            workspace, current_user, table, request.form.get("name", ""), column_type, config=config, index=index
        )
        message = f"Added “{column.name}”."
        return _job_response(workspace, table, job, message) if job is not None else _done(workspace, table, message)

    return _run(workspace, table_id, action)


@bp.get(f"{BASE}/<int:column_id>/menu")
@workspace_page("tables.manage")
def column_menu(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    table = service.get_table_or_404(workspace, table_id)
    column = column_service.get_column_or_404(table, column_id)
    view = _view(workspace, table) or column_service.default_view(workspace, table)
    live = table.live_columns
    return render_template(
        "tables/_columns_menu.html",
        workspace=workspace,
        table=table,
        column=column,
        view=view,
        index=live.index(column),
        count=len(live),
        types={t: label for t, label in TYPE_LABELS.items() if t in column_service.RETYPE_TARGETS},
        hidden=column.id in (view.hidden_column_ids or []),
        lookup=lookups.settings_choices(workspace, table, column.config) if column.type == "lookup" else None,
    )


@bp.post(f"{BASE}/<int:column_id>/rename")
@workspace_page("tables.manage")
def rename_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    def action(table: Table) -> Any:
        before = column_service.get_column_or_404(table, column_id).name
        column = column_service.rename_table_column(
            workspace, current_user, table, column_id, request.form.get("name", "")
        )
        message = f"Renamed “{before}” to “{column.name}”." if column.name != before else None
        return _done(workspace, table, message)

    return _run(workspace, table_id, action)


@bp.post(f"{BASE}/<int:column_id>/retype")
@workspace_page("tables.manage")
def retype_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    def action(table: Table) -> Any:
        new_type = request.form.get("type", "")
        config: dict[str, Any] | None = None
        options = request.form.get("options", "").strip()
        if options:
            config = {"options": [o.strip() for o in options.split(",") if o.strip()]}
        job = column_service.start_retype(workspace, current_user, table, column_id, new_type, config=config)
        column = column_service.get_column_or_404(table, column_id)
        label = TYPE_LABELS.get(new_type, new_type).lower()
        return _job_response(workspace, table, job, f"Changing “{column.name}” to {label}…")

    return _run(workspace, table_id, action)


@bp.post(f"{BASE}/<int:column_id>/formula")
@workspace_page("tables.manage")
def change_formula(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    def action(table: Table) -> Any:
        job = column_service.set_formula(workspace, current_user, table, column_id, request.form.get("expression", ""))
        return _job_response(workspace, table, job)

    return _run(workspace, table_id, action)


@bp.app_template_global("number_format_json")
def number_format_json(column: Column) -> str:
    """A number column's format as JSON for its header (the status bar formats sums with it)."""
    return json.dumps(number_format.format_json(number_format.format_of(column.type, column.config)))


def _format_context(workspace: Workspace, table: Table, column: Column, fields: dict[str, Any] | None = None) -> dict:
    config = {**column.config, **(fields or {})}
    fmt = number_format.format_of(column.type, config)
    offered = sorted({*range(number_format.MENU_DECIMALS + 1), *([fmt.decimals] if fmt.decimals is not None else [])})
    return {
        "workspace": workspace,
        "table": table,
        "column": column,
        "fmt": fmt,
        "decimals": offered,
        "styles": number_format.STYLES if column.type in ("number", "formula") else (),
        "currencies": sorted({*number_format.CURRENCY_CODES, fmt.currency}),
        "example": number_format.format_number(FORMAT_EXAMPLE, fmt),
        "view_id": request.values.get("view_id") or request.values.get("view") or "",
    }


def _format_fields() -> dict[str, Any]:
    """Read the format form (the service checks the values): "auto" decimals leave them to the value."""
    fields: dict[str, Any] = {"thousands": request.form.get("thousands") == "1"}
    decimals = (request.form.get("decimals") or "auto").strip()
    if decimals != "auto":
        if not decimals.isdigit() or len(decimals) > 2:
            raise ValidationFailed("Decimals is auto or a whole number from 0 to 10.", fields={"decimals": ["bad"]})
        fields["decimals"] = int(decimals)
    for name in ("style", "currency"):
        if request.form.get(name):
            fields[name] = request.form[name]
    return fields


@bp.get(f"{BASE}/<int:column_id>/format")
@workspace_page("tables.manage")
def column_format(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """The number format form: a popover of the header menu, or a page of its own without script."""
    table = service.get_table_or_404(workspace, table_id)
    column = column_service.get_column_or_404(table, column_id)
    if not number_format.has_number_format(column.type, column.config):
        return _error(ValidationFailed(f"{column.name} does not hold numbers; only number columns have a format."))
    return render_page_or_fragment(
        "tables/column_format.html",
        hx_fragment="tables/_column_format.html",
        **_format_context(workspace, table, column),
    )


@bp.post(f"{BASE}/<int:column_id>/format")
@workspace_page("tables.manage")
def save_column_format(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    def action(table: Table) -> Any:
        column = column_service.set_column_format(workspace, current_user, table, column_id, _format_fields())
        fmt = number_format.format_of(column.type, column.config)
        message = f"{column.name} now shows {number_format.format_number(FORMAT_EXAMPLE, fmt)}."
        if wants_fragment():
            response = make_response("", 204)
            add_toast(response, message)
            # The page refreshes the grid's window and keeps the format for the status bar's sums.
            triggers = json.loads(response.headers["HX-Trigger"])
            triggers["morket:column-format"] = {"column_id": column.id, "format": number_format.format_json(fmt)}
            response.headers["HX-Trigger"] = json.dumps(triggers)
        else:
            flash(message, "success")
            view = request.values.get("view_id")
            response = redirect(url_for("tables.grid", slug=workspace.slug, table_id=table.id, view=view or None), 303)
        db.session.commit()
        return response

    return _run(workspace, table_id, action)


@bp.post(f"{BASE}/<int:column_id>/move")
@workspace_page("tables.manage")
def move_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    def action(table: Table) -> Any:
        target = (request.form.get("to_column") or "").strip()
        if target:
            # A drop on another header: take that column's place among all live columns.
            ids = [c.id for c in table.live_columns]
            if not target.isdigit() or int(target) not in ids:
                raise MorketError("Drop the column onto another column of this table.")
            index = ids.index(int(target))
        else:
            index = _int("position", "Position") - 1
        column_service.move_column(workspace, current_user, table, column_id, index)
        name = column_service.get_column_or_404(table, column_id).name
        return _done(workspace, table, f"Moved “{name}” to place {index + 1}.")

    return _run(workspace, table_id, action)


@bp.post(f"{BASE}/<int:column_id>/width")
@workspace_page("tables.manage")
@limiter.limit(GRID_LIMIT)
def resize_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    def action(table: Table) -> Any:
        width = _int("width", "Width")
        column_service.resize_column(workspace, current_user, table, _view(workspace, table), column_id, width)
        return _done(workspace, table)

    return _run(workspace, table_id, action, lock="share")


@bp.post(f"{BASE}/<int:column_id>/hide")
@workspace_page("tables.manage")
def hide_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    def action(table: Table) -> Any:
        hidden = request.form.get("hidden", "1") != "0"
        column_service.set_column_hidden(workspace, current_user, table, _view(workspace, table), column_id, hidden)
        name = column_service.get_column_or_404(table, column_id).name
        return _done(workspace, table, f"Hid “{name}”." if hidden else f"Showing “{name}” again.")

    return _run(workspace, table_id, action, lock="share")


@bp.post(f"{BASE}/freeze")
@workspace_page("tables.manage")
def freeze_columns(workspace: Workspace, membership: Member, table_id: int):
    def action(table: Table) -> Any:
        count = _int("count", "Frozen columns")
        column_service.freeze_columns(workspace, current_user, table, _view(workspace, table), count)
        if count <= 0:
            message = "No columns are frozen now."
        else:
            message = f"Froze the first {count} columns." if count > 1 else "Froze the first column."
        return _done(workspace, table, message)

    return _run(workspace, table_id, action, lock="share")


@bp.post(f"{BASE}/<int:column_id>/delete")
@workspace_page("tables.manage")
def delete_column(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    def action(table: Table) -> Any:
        column = column_service.delete_table_column(workspace, current_user, table, column_id)
        return _done(workspace, table, f"Deleted “{column.name}”.", undoable=True)

    return _run(workspace, table_id, action)


@bp.get(f"{BASE}/jobs")
@workspace_page("tables.view")
@limiter.limit(GRID_LIMIT)
def column_jobs(workspace: Workspace, membership: Member, table_id: int):
    table = service.get_table_or_404(workspace, table_id)
    jobs = [job for job in column_service.recent_jobs(workspace, table) if not job.finished]
    body = "".join(
        render_template("tables/_columns_job.html", workspace=workspace, table=table, job=job) for job in jobs
    )
    response = make_response(body)
    response.headers["Vary"] = "HX-Request"
    return response


@bp.get(f"{BASE}/jobs/<int:job_id>")
@workspace_page("tables.view")
@limiter.limit(GRID_LIMIT)
def column_job(workspace: Workspace, membership: Member, table_id: int, job_id: int):
    table = service.get_table_or_404(workspace, table_id)
    job = column_service.get_job_or_404(workspace, table, job_id)
    body = render_template("tables/_columns_job.html", workspace=workspace, table=table, job=job)
    # 286 tells htmx to stop polling: the job is over.
    response = make_response(body, 286 if job.finished else 200)
    response.headers["Vary"] = "HX-Request"
    return response


def _state_title(state: dict[str, Any]) -> str:
    """The tooltip of a cell with state: an enrichment cell names its state and provider, else the message."""
    message = str(state.get("message") or "")
    if "run_id" not in state and "provider" not in state:
        return message
    title = CELL_STATE_LABELS.get(state["status"], state["status"])
    if state.get("provider"):
        title += f" · {state['provider']}"
    return f"{title}: {message}" if message else title


def mark_cell_states(cells: Markup, cell_state: dict[str, Any] | None) -> Markup:
    """Mark the cells of one rendered row that have a state (a formula error, a value kept by a retype).

    The window partial renders cells as fixed strings; a row without state passes through untouched.
    """
    if not cell_state:
        return cells
    html = str(cells)
    for key, state in cell_state.items():
        if not key.isdigit() or not isinstance(state, dict) or state.get("status") not in MARKED_CELL_STATUSES:
            continue
        anchor = f'" data-col-id="{int(key)}" '
        message = escape(_state_title(state))
        html = html.replace(anchor, f' is-{state["status"]}" data-col-id="{int(key)}" title="{message}" ', 1)
    return Markup(html)  # noqa: S704 - rendered cells plus an escaped message
