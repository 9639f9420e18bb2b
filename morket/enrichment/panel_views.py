"""The drawer's editors: an enrichment column's steps, inputs and outputs; the HTTP-request card; the scrape preview.

Each posts the full setup page's fields and saves through the same ``forms.setup_from_form`` and
``columns`` services as that page, so the drawer and the page accept and refuse the same setups.
Buttons that change the form (a step moved, removed or added; a column inserted into the URL; a header
row added) re-render it without saving; without JavaScript they are plain submit buttons.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import flash, request, url_for
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from morket.core.errors import MorketError, ValidationFailed
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.enrichment import bp, columns, forms, http_panel, panel_forms, panel_service
from morket.enrichment.views import PANEL, SETUP, go, panel_base, render_panel
from morket.extensions import db, limiter
from morket.tables import service as tables
from morket.tables.models import Column, Table

EDIT = f"{SETUP}/<int:column_id>/panel/edit"
HTTP = f"{PANEL}/http"
TEST_LIMIT = "20/minute"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _back_to_grid(workspace: Workspace, table_id: int, column_id: int):
    if request.headers.get("HX-Request") == "true":
        # The grid reloads to show the columns as saved, with the drawer open on the column's runs.
        return go(url_for("tables.grid", slug=workspace.slug, table_id=table_id, enrich=column_id))
    return go(url_for("enrichment.panel_column", slug=workspace.slug, table_id=table_id, column_id=column_id))


# --- an enrichment column's setup, edited in the drawer ----------------------------------------------------


def _edit_form(
    workspace: Workspace,
    membership: Member,
    table: Table,
    column: Column,
    values: Mapping[str, str],
    *,
    error: str | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    focus: int | None = None,
    tests: dict[int, http_panel.TestAnswer] | None = None,
):
    sample = panel_service.sample_table(workspace, current_user, table)
    operations = columns.operations()
    form = forms.describe(
        table, operations, dict(values), error=error, errors=errors, self_id=column.id, roles=sample.roles
    )
    chosen = panel_forms.chosen_inputs(form.values, {c.id for c in table.live_columns})
    kinds = {spec.name: spec.kind for op in form.chosen for spec in op.inputs}
    labels = dict(form.inputs)
    steps = panel_forms.steps_of(form.values)
    http_steps = [i for i, step in enumerate(steps, start=1) if step["step"] == forms.HTTP_OPERATION]
    return render_panel(
        "enrichment/_panel_edit.html",
        status,
        column=column,
        form=form,
        steps=steps,
        http_previews={
            i: http_panel.preview(workspace, current_user, table, panel_forms.card_form(form.values, i))
            for i in http_steps
        },
        http_tests=tests or {},
        header_rows_of=panel_forms.step_header_rows,
        output_rows_of=panel_forms.step_output_rows,
        output_types=columns.OUTPUT_TYPES,
        methods=METHODS,
        key_hint=http_panel.stored_key_hint(workspace) if http_steps else None,
        is_secret=panel_forms.looks_secret,
        operation_labels={op.key: op.label for op in operations},
        addable=[op for op in operations if not op.validates],
        chosen={name: chosen[name] for name in labels if name in chosen},
        input_labels=labels,
        column_names={c.id: c.name for c in table.live_columns},
        preview=panel_service.preview_inputs(sample, {n: chosen[n] for n in labels if n in chosen}, kinds=kinds),
        sample_count=min(len(sample.rows), panel_service.PREVIEW_ROWS),
        condition_operators=forms.CONDITION_OPERATORS,
        focus=focus,
        **panel_base(workspace, membership, table),
    )


def _moved_to(action: str, steps: int) -> int | None:
    """Where the step a button acted on now is (it keeps the keyboard focus), or None when it is gone."""
    verb, _, raw = action.partition(":")
    if verb == "add":
        return steps
    if not raw.isdigit() or verb == "remove":
        return None
    n = int(raw) + (-1 if verb == "up" else 1)
    return min(max(n, 1), steps)


@bp.get(EDIT)
@workspace_page("enrichment.run")
def panel_edit(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """An enrichment column's steps, inputs (with the first rows' values), outputs and run condition, in the drawer."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    return _edit_form(workspace, membership, table, column, forms.values_from_column(column, columns.setup_of(column)))


@bp.post(EDIT)
@workspace_page("enrichment.run")
def panel_update(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """Move, remove or add a step (``step_action``), refresh the preview (``refresh``), or save the setup."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    values = panel_forms.join_step_rows(panel_forms.flat(request.form))
    action = values.pop("step_action", "")
    if action or values.pop("refresh", ""):
        if not action:
            return _edit_form(workspace, membership, table, column, values)
        try:
            values = panel_forms.rearrange(values, action, operations=[op.key for op in columns.operations()])
        except ValidationFailed as exc:
            return _edit_form(workspace, membership, table, column, values, error=exc.message, status=exc.status)
        focus = _moved_to(action, len(panel_forms.steps_of(values)))
        return _edit_form(workspace, membership, table, column, values, focus=focus)
    before = (column.name, dict(column.config or {}))
    try:
        setup = forms.setup_from_form(MultiDict(values), columns.operations())
        column = columns.update_enrichment_column(workspace, current_user, table, column.id, setup)
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        column = columns.get_enrichment_column_or_404(workspace, table, column_id)
        return _edit_form(
            workspace, membership, table, column, values, error=exc.message, errors=exc.fields, status=exc.status
        )
    _flash_saved(column, changed=(column.name, column.config) != before)
    db.session.commit()
    return _back_to_grid(workspace, table_id, column_id)


def _flash_saved(column: Column, *, changed: bool) -> None:
    """Say what saving did; on the grid (where htmx callers land) the toast offers the grid's Undo."""
    if not changed:
        flash(f"Nothing changed in “{column.name}”.", "info")
    elif request.headers.get("HX-Request") == "true":
        flash(f"Saved “{column.name}”: its next run uses the new setup; found values are kept.", "undo")
    else:
        flash(f"Saved “{column.name}”: its next run uses the new setup; found values are kept.", "success")


@bp.post(f"{EDIT}/http-test")
@workspace_page("enrichment.run")
@limiter.limit(TEST_LIMIT)
def panel_edit_http_test(workspace: Workspace, membership: Member, table_id: int, column_id: int):
    """Send the first row's request of the edited HTTP step (``test_step``) now, through the run's SSRF guard."""
    table = tables.get_table_or_404(workspace, table_id)
    column = columns.get_enrichment_column_or_404(workspace, table, column_id)
    values = panel_forms.join_step_rows(panel_forms.flat(request.form))
    raw = values.pop("test_step", "")
    steps = panel_forms.steps_of(values)
    if not raw.isdigit() or not 1 <= int(raw) <= len(steps) or steps[int(raw) - 1]["step"] != forms.HTTP_OPERATION:
        return _edit_form(workspace, membership, table, column, values, error="Pick an HTTP step to test.", status=422)
    try:
        answer = http_panel.send_test(workspace, current_user, table, panel_forms.card_form(values, int(raw)))
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        column = columns.get_enrichment_column_or_404(workspace, table, column_id)
        shown = panel_forms.without_step_secrets(values)
        return _edit_form(workspace, membership, table, column, shown, error=exc.message, status=exc.status)
    db.session.commit()  # the audit of a stored key's use
    shown = panel_forms.without_step_secrets(values)
    return _edit_form(workspace, membership, table, column, shown, tests={int(raw): answer})


# --- the HTTP-request card ------------------------------------------------------------------------------


def _http_form(
    workspace: Workspace,
    membership: Member,
    table: Table,
    form: Mapping[str, str],
    *,
    test: http_panel.TestAnswer | None = None,
    error: str | None = None,
    status: int = 200,
):
    values = panel_forms.http_values(form)
    names = http_request_inputs(values)
    live = [c for c in table.live_columns if c.type not in forms.COMPUTED]
    sample = panel_service.sample_table(workspace, current_user, table, limit=1)
    return render_panel(
        "enrichment/_panel_http.html",
        status,
        values=form,
        inputs=names,
        input_choices={n: forms.input_choices(n, "text", live, sample.roles, form.get(f"in_{n}", "")) for n in names},
        columns_to_insert=live,
        headers=panel_forms.header_rows(form),
        methods=METHODS,
        output_types=columns.OUTPUT_TYPES,
        preview=http_panel.preview(workspace, current_user, table, form),
        test=test,
        key_hint=http_panel.stored_key_hint(workspace),
        is_secret=panel_forms.looks_secret,
        error=error,
        **panel_base(workspace, membership, table),
    )


def http_request_inputs(values: Mapping[str, str]) -> list[str]:
    """The ``{{name}}`` inputs the drawer's HTTP step names in its templates."""
    from morket.providers import http_request

    return http_request.template_inputs(forms.http_options(values, 1))


def _with_inserted(form: dict[str, str], table: Table) -> dict[str, str]:
    """The form with the picked column inserted into the URL as ``{{name}}`` and mapped to that input."""
    raw = form.get("insert_column", "")
    live = {c.id: c for c in table.live_columns if c.type not in forms.COMPUTED}
    if not raw.isdigit() or int(raw) not in live:
        raise ValidationFailed("Pick a column to insert.", fields={"insert_column": ["pick a column"]})
    column = live[int(raw)]
    name = panel_forms.placeholder(column.name)
    form["http_url_1"] = form.get("http_url_1", "") + f"{{{{{name}}}}}"
    form[f"in_{name}"] = str(column.id)
    return form


@bp.get(HTTP)
@workspace_page("enrichment.run")
def panel_http(workspace: Workspace, membership: Member, table_id: int):
    """The HTTP-request card in the drawer: method, URL with inserted columns, headers, body, what to keep."""
    table = tables.get_table_or_404(workspace, table_id)
    start = {"name": panel_service.free_name(table, "API call"), "http_method_1": "GET", "out_type": "text"}
    return _http_form(workspace, membership, table, start)


@bp.post(HTTP)
@workspace_page("enrichment.run")
def panel_http_save(workspace: Workspace, membership: Member, table_id: int):
    """Insert a column, add a header row, refresh the preview, or save the HTTP column (``action``)."""
    table = tables.get_table_or_404(workspace, table_id)
    form = panel_forms.flat(request.form)
    action = form.pop("action", "save")
    try:
        if action == "insert":
            return _http_form(workspace, membership, table, _with_inserted(form, table))
        if action == "header":
            form["header_rows"] = str(len(panel_forms.header_rows(form)) + 1)
            return _http_form(workspace, membership, table, form)
        if action == "refresh":
            return _http_form(workspace, membership, table, form)
    except ValidationFailed as exc:
        return _http_form(workspace, membership, table, form, error=exc.message, status=exc.status)
    try:
        templates = http_panel.store_secret_headers(workspace, current_user, form)
        values = panel_forms.http_values(form, key_template=templates)
        if not values["target"]:
            raise ValidationFailed("Name the field to keep and its JSONPath.", fields={"out_field": ["required"]})
        setup = forms.setup_from_form(MultiDict(values), columns.operations())
        column = columns.create_enrichment_column(workspace, current_user, table, setup)
    except MorketError as exc:
        db.session.rollback()
        table = tables.get_table_or_404(workspace, table_id)
        return _http_form(workspace, membership, table, _without_secrets(form), error=exc.message, status=exc.status)
    column_id = column.id
    db.session.commit()
    return _back_to_grid(workspace, table_id, column_id)


def _without_secrets(form: dict[str, str]) -> dict[str, str]:
    """The form shown back after an error: secret header values are never echoed."""
    out = dict(form)
    for k, (name, value) in enumerate(panel_forms.header_rows(form), start=1):
        if panel_forms.looks_secret(name, value):
            out[f"hdr_value_{k}"] = ""
    return out


@bp.post(f"{HTTP}/test")
@workspace_page("enrichment.run")
@limiter.limit(TEST_LIMIT)
def panel_http_test(workspace: Workspace, membership: Member, table_id: int):
    """Send the first row's request now, through the run's SSRF guard; show status, latency and the value."""
    table = tables.get_table_or_404(workspace, table_id)
    form = panel_forms.flat(request.form)
    form.pop("action", None)
    try:
        answer = http_panel.send_test(workspace, current_user, table, form)
    except MorketError as exc:
        db.session.rollback()
        return _http_form(workspace, membership, table, _without_secrets(form), error=exc.message, status=exc.status)
    db.session.commit()  # the audit of a stored key's use
    return _http_form(workspace, membership, table, _without_secrets(form), test=answer)


# --- the website scrape card: a preview of the first row through the scraping service -------------------


@bp.post(f"{PANEL}/scrape-preview")
@workspace_page("enrichment.run")
@limiter.limit(TEST_LIMIT)
def panel_scrape_preview(workspace: Workspace, membership: Member, table_id: int):
    """Scrape the first row's site now (queued to the scrape workers, as the scrape page does) and poll it."""
    from morket.scraping import service as scraping

    table = tables.get_table_or_404(workspace, table_id)
    context: dict[str, Any] = {"workspace": workspace, "table": table}
    sample = panel_service.sample_table(workspace, current_user, table, limit=1)
    chosen = panel_forms.chosen_inputs(panel_forms.flat(request.form), {c.id for c in table.live_columns})
    domain = chosen.get("domain")
    value = sample.rows[0][1].get(domain[0]) if sample.rows and domain else None
    if not value:
        return render_panel(
            "enrichment/_panel_scrape.html",
            422,
            error="Pick the column with the site first; its first row is empty.",
            **context,
        )
    try:
        scrape = scraping.start_scrape(
            workspace, current_user, str(value), request.form.get("extractor") or "company", source="panel"
        )
    except MorketError as exc:
        db.session.rollback()
        return render_panel("enrichment/_panel_scrape.html", exc.status, error=exc.message, **context)
    scrape_id = scrape.id
    db.session.commit()
    return render_panel(
        "enrichment/_panel_scrape.html",
        200,
        poll=url_for("enrichment.panel_scrape_result", slug=workspace.slug, table_id=table.id, scrape_id=scrape_id),
        target=scrape.url,
        **context,
    )


@bp.get(f"{PANEL}/scrape-preview/<int:scrape_id>")
@workspace_page("enrichment.run")
def panel_scrape_result(workspace: Workspace, membership: Member, table_id: int, scrape_id: int):
    """The first row's scrape as the card's fields (each one a column to tick); 286 once read stops the polling."""
    from morket.providers.website import SCRAPE
    from morket.scraping import service as scraping

    table = tables.get_table_or_404(workspace, table_id)
    scrape = scraping.get_scrape_or_404(workspace, scrape_id)
    context: dict[str, Any] = {"workspace": workspace, "table": table, "target": scrape.url}
    if not scrape.is_final:
        poll = url_for("enrichment.panel_scrape_result", slug=workspace.slug, table_id=table.id, scrape_id=scrape_id)
        return render_panel("enrichment/_panel_scrape.html", 200, poll=poll, **context)
    found = scrape.result if isinstance(scrape.result, dict) else {}
    fields = [(spec.name, spec.label, found.get(spec.name)) for spec in SCRAPE.outputs]
    return render_panel(
        "enrichment/_panel_scrape.html",
        286,
        scrape=scrape,
        fields=fields,
        error=None if found else (scrape.message or "The site could not be read."),
        **context,
    )
