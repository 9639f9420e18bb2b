"""Pages of dedupe and bulk edits: find and merge duplicates, find and replace, delete matching rows."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from morket.core.errors import MorketError, ValidationFailed
from morket.core.htmx import render_page_or_fragment
from morket.core.tenancy import workspace_page
from morket.core.text import plural
from morket.core.types import Member, Workspace
from morket.dataops import bp, bulk, dedupe
from morket.dataops.normalise import MATCH_KINDS
from morket.extensions import db
from morket.tables import service as tables
from morket.tables.filters import OPERATORS
from morket.tables.models import Table

RULE = "/w/<slug>/tables/<int:table_id>"
MATCH_LABELS = {
    "text": "Text (case and spaces ignored)",
    "email": "Email address",
    "domain": "Domain (no scheme, www or path)",
    "url": "Web address (no scheme or www)",
    "phone": "Phone (digits only)",
}
OPERATOR_LABELS = {
    "equals": "is",
    "not_equals": "is not",
    "contains": "contains",
    "not_contains": "does not contain",
    "starts_with": "starts with",
    "gt": "is greater than",
    "lt": "is less than",
    "is_empty": "is empty",
    "is_not_empty": "is not empty",
    "is_true": "is checked",
    "is_false": "is not checked",
}


def _key_from(args: MultiDict[str, str], table: Table) -> tuple[list[dedupe.KeyPart] | None, dict[int, str]]:
    """Return the dedupe key the form names (None when no column is picked yet) and the match choices."""
    kinds = {c.id: args.get(f"match_{c.id}") or dedupe.default_kind(c.type) for c in table.live_columns}
    picked = args.getlist("col")
    if not picked:
        return None, kinds
    return dedupe.dedupe_key(table, picked, kinds), kinds


def _dedupe_page(
    workspace: Workspace,
    membership: Member,
    table: Table,
    args: MultiDict[str, str],
    *,
    error: str | None = None,
    status: int = 200,
):
    kinds: dict[int, str] = {}
    parts = found = None
    try:
        parts, kinds = _key_from(args, table)
        if parts is not None:
            found = dedupe.find_duplicates(workspace, current_user, table, parts, page=args.get("page", 1, type=int))
    except ValidationFailed as exc:
        error, status, parts = exc.message, 422, None
    return render_page_or_fragment(
        "dataops/dedupe.html",
        status,
        workspace=workspace,
        membership=membership,
        table=table,
        columns=table.live_columns,
        picked={p.column.id for p in parts or ()},
        parts=parts or [],
        kinds=kinds,
        match_kinds=MATCH_KINDS,
        match_labels=MATCH_LABELS,
        found=found,
        error=error,
        keep=args.get("keep", "first"),
    )


@bp.get(f"{RULE}/dedupe")
@workspace_page("tables.edit")
def dedupe_page(workspace: Workspace, membership: Member, table_id: int):
    """Pick the columns to compare and see the duplicate groups, a page at a time."""
    table = tables.get_table_or_404(workspace, table_id)
    return _dedupe_page(workspace, membership, table, request.args)


@bp.post(f"{RULE}/dedupe")
@workspace_page("tables.edit")
def dedupe_merge(workspace: Workspace, membership: Member, table_id: int):
    """Merge every duplicate group (one undo step) and come back to the same comparison."""
    table = tables.get_table_or_404(workspace, table_id, lock="update")
    form = request.form
    try:
        parts, _ = _key_from(form, table)
        if parts is None:
            raise ValidationFailed("Pick the columns to compare.", fields={"col": ["required"]})
        chosen = [v for k, v in form.items(multi=True) if k.startswith("keep_row_") and v.isdigit()]
        result = dedupe.merge_duplicates(
            workspace, current_user, table, parts, keep=form.get("keep", "first"), chosen=[int(v) for v in chosen]
        )
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        return _dedupe_page(workspace, membership, table, form, error=exc.message, status=exc.status)
    db.session.commit()
    flash(f"{result.run.message} Undo puts everything back (Undo in the table's toolbar).", "success")
    query = {"col": [p.column.id for p in parts], **{f"match_{p.column.id}": p.kind for p in parts}}
    return redirect(url_for("dataops.dedupe_page", slug=workspace.slug, table_id=table.id, **query))


# --- bulk edits ---------------------------------------------------------------------------------------


def _bulk_page(workspace: Workspace, membership: Member, table: Table, *, status: int = 200, **context: Any):
    replaceable = [c for c in table.live_columns if c.type in bulk.REPLACEABLE_TYPES]
    filterable = [c for c in table.live_columns if OPERATORS.get(c.type)]
    return render_page_or_fragment(
        "dataops/bulk.html",
        status,
        workspace=workspace,
        membership=membership,
        table=table,
        replaceable=replaceable,
        filterable=filterable,
        operator_labels=OPERATOR_LABELS,
        views=tables.list_views(workspace, table),
        form=request.form if request.method == "POST" else {},
        **context,
    )


@bp.get(f"{RULE}/bulk")
@workspace_page("tables.edit")
def bulk_page(workspace: Workspace, membership: Member, table_id: int):
    """Find and replace within a column, or delete the rows that match a filter."""
    table = tables.get_table_or_404(workspace, table_id)
    return _bulk_page(workspace, membership, table)


@bp.post(f"{RULE}/bulk/replace")
@workspace_page("tables.edit")
def bulk_replace(workspace: Workspace, membership: Member, table_id: int):
    """Count the cells a find and replace changes (preview), or replace them as one undo step."""
    table = tables.get_table_or_404(workspace, table_id, lock="update")
    form = request.form
    preview = form.get("action") != "apply"
    try:
        result = bulk.replace_in_column(
            workspace,
            current_user,
            table,
            form.get("column", ""),
            form.get("find", ""),
            form.get("replace", ""),
            match_case=form.get("match_case") == "1",
            whole_cell=form.get("whole_cell") == "1",
            preview=preview,
        )
    except MorketError as exc:
        db.session.rollback()
        return _bulk_page(workspace, membership, table, status=exc.status, replace_error=exc.message)
    if preview:
        db.session.rollback()
        return _bulk_page(workspace, membership, table, replace_preview=result)
    db.session.commit()
    flash(
        f"Replaced {plural(result.changed, 'cell')}. Undo in the table's toolbar puts them back.",
        "success",
    )
    return redirect(url_for("dataops.bulk_page", slug=workspace.slug, table_id=table.id))


def _filters_from(form: MultiDict[str, str], workspace: Workspace, table: Table) -> dict[str, Any]:
    """Return the filter group of the delete form: a saved view's filters and/or one condition."""
    conditions: list[dict[str, Any]] = []
    view_id = form.get("view", "")
    if view_id:
        if not view_id.isdigit():
            raise ValidationFailed("Pick a view of this table.", fields={"view": ["unknown"]})
        view = tables.get_view_or_404(workspace, table, int(view_id))
        if not (view.filters or {}).get("conditions"):
            raise ValidationFailed(f"The view {view.name} has no filter.", fields={"view": ["no filter"]})
        conditions.append(view.filters)
    if form.get("column"):
        condition: dict[str, Any] = {"column_id": form.get("column"), "operator": form.get("operator", "")}
        if form.get("operator") not in ("is_empty", "is_not_empty", "is_true", "is_false"):
            condition["value"] = form.get("value", "")
        conditions.append(condition)
    return {"op": "and", "conditions": conditions}


@bp.post(f"{RULE}/bulk/delete")
@workspace_page("tables.edit")
def bulk_delete(workspace: Workspace, membership: Member, table_id: int):
    """Count the rows a filter matches (preview), or delete them as one undo step."""
    table = tables.get_table_or_404(workspace, table_id, lock="update")
    form = request.form
    try:
        filters = _filters_from(form, workspace, table)
        if form.get("action") != "apply":
            count = bulk.count_matching_rows(workspace, current_user, table, filters)
            db.session.rollback()
            return _bulk_page(workspace, membership, table, delete_preview=count)
        deleted = bulk.delete_matching_rows(workspace, current_user, table, filters)
    except MorketError as exc:
        db.session.rollback()
        return _bulk_page(workspace, membership, table, status=exc.status, delete_error=exc.message)
    db.session.commit()
    flash(f"Deleted {plural(deleted, 'row')}. Undo in the table's toolbar puts them back.", "success")
    return redirect(url_for("dataops.bulk_page", slug=workspace.slug, table_id=table.id))
