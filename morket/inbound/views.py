"""The inbound source pages: create a source (URL and secret shown once), map its payloads, see receipts,
inspect and replay refused payloads; and the table page's pulse, which tells the grid rows arrived."""

from __future__ import annotations

from flask import Response, flash, jsonify, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from morket.core.errors import MorketError
from morket.core.forms import show_error_on_form
from morket.core.htmx import render_page_or_fragment
from morket.core.ratelimit import GRID_LIMIT
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.extensions import db, limiter
from morket.inbound import bp, service
from morket.inbound import pulse as grid_pulse
from morket.inbound.forms import CreateSourceForm, SampleForm
from morket.inbound.models import InboundSource
from morket.tables import service as tables
from morket.tables.models import Table


def pulse_url(workspace: Workspace, table: Table) -> str | None:
    """The URL the table page polls for arriving rows, when the table has an inbound source."""
    if not grid_pulse.has_sources(workspace.id, table.id):
        return None
    return url_for("inbound.pulse", slug=workspace.slug, table_id=table.id)


def _no_store(resp: Response) -> Response:
    # A page that shows a secret must never be kept in a cache or replayed from history.
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _index(
    workspace: Workspace, membership: Member, table: Table, form: CreateSourceForm | None = None, status: int = 200
) -> Response:
    sources = service.list_sources(workspace, table)
    return render_page_or_fragment(
        "inbound/index.html",
        status,
        workspace=workspace,
        membership=membership,
        table=table,
        sources=sources,
        form=form or CreateSourceForm(formdata=None),
        can_manage=can(membership.role, "tables.manage"),
        url_of=service.source_url,
    )


@bp.get("/w/<slug>/tables/<int:table_id>/inbound")
@workspace_page("tables.view")
def index(workspace: Workspace, membership: Member, table_id: int) -> Response:
    return _index(workspace, membership, tables.get_table_or_404(workspace, table_id))


@bp.post("/w/<slug>/tables/<int:table_id>/inbound")
@workspace_page("tables.manage")
def create(workspace: Workspace, membership: Member, table_id: int) -> ResponseReturnValue:
    table = tables.get_table_or_404(workspace, table_id)
    form = CreateSourceForm()
    if not form.validate_on_submit():
        return _index(workspace, membership, table, form, 422)
    try:
        source, secret = service.create_source(
            workspace, current_user, table, form.name.data, require_signature=form.require_signature.data
        )
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _index(workspace, membership, table, form, exc.status)
    db.session.commit()
    return _source_page(workspace, membership, table_id, source.id, secret=secret, status=201)


def _source_page(
    workspace: Workspace,
    membership: Member,
    table_id: int,
    source_id: int,
    *,
    secret: str | None = None,
    error: MorketError | None = None,
    sample_form: SampleForm | None = None,
    status: int = 200,
) -> Response:
    table = tables.get_table_or_404(workspace, table_id)
    source = service.get_source_or_404(workspace, source_id, table_id=table.id)
    can_edit = can(membership.role, "tables.edit")
    rows, preview_note = service.preview(table, source, source.sample) if source.sample is not None else ([], None)
    mapped = service.mapped_columns(table, source)
    resp = render_page_or_fragment(
        "inbound/source.html",
        status,
        workspace=workspace,
        membership=membership,
        table=table,
        source=source,
        url=service.source_url(source),
        secret=secret,
        error=error,
        can_edit=can_edit,
        can_manage=can(membership.role, "tables.manage"),
        columns=[c for c in table.live_columns if c.type not in service.UNMAPPABLE_TYPES],
        mapped=mapped,
        sample_fields=[
            p for p in service.sample_fields(source) if p not in {m.removeprefix("$.") for m in mapped.values()}
        ],
        preview_rows=rows,
        preview_note=preview_note,
        failures=service.list_failures(workspace, source) if can_edit else [],
        body_text=service.body_text,
        sample_form=sample_form or SampleForm(formdata=None),
    )
    return _no_store(resp) if secret else resp


@bp.get("/w/<slug>/tables/<int:table_id>/inbound/<int:source_id>")
@workspace_page("tables.view")
def source_page(workspace: Workspace, membership: Member, table_id: int, source_id: int) -> Response:
    return _source_page(workspace, membership, table_id, source_id)


def _load(workspace: Workspace, table_id: int, source_id: int) -> InboundSource:
    tables.get_table_or_404(workspace, table_id)
    return service.get_source_or_404(workspace, source_id, table_id=table_id)


def _back(workspace: Workspace, table_id: int, source_id: int, anchor: str = "") -> Response:
    target = url_for("inbound.source_page", slug=workspace.slug, table_id=table_id, source_id=source_id)
    return redirect(target + anchor, code=303)


def _form_int(name: str) -> int | None:
    raw = (request.form.get(name) or "").strip()
    return int(raw) if raw.isdigit() else None


@bp.post("/w/<slug>/tables/<int:table_id>/inbound/<int:source_id>/mapping")
@workspace_page("tables.manage")
def save_mapping(workspace: Workspace, membership: Member, table_id: int, source_id: int) -> ResponseReturnValue:
    source = _load(workspace, table_id, source_id)
    columns = {key.removeprefix("path_"): v for key, v in request.form.items() if key.startswith("path_") and v.strip()}
    rate, limit = _form_int("rate_per_minute"), _form_int("max_body_kb")
    try:
        service.update_source(
            workspace,
            current_user,
            source,
            name=request.form.get("name") or source.name,
            records_path=request.form.get("records_path", ""),
            columns=columns,
            upsert_column_id=_form_int("upsert_column_id"),
            rate_per_minute=rate if rate is not None else source.rate_per_minute,
            max_body_bytes=limit * 1024 if limit is not None else source.max_body_bytes,
            require_signature=request.form.get("require_signature") == "y",
        )
    except MorketError as exc:
        db.session.rollback()
        return _source_page(workspace, membership, table_id, source_id, error=exc, status=exc.status)
    db.session.commit()
    flash("Mapping saved. New payloads use it; replay refused ones below.", "success")
    return _back(workspace, table_id, source_id, "#mapping")


@bp.post("/w/<slug>/tables/<int:table_id>/inbound/<int:source_id>/sample")
@workspace_page("tables.manage")
def save_sample(workspace: Workspace, membership: Member, table_id: int, source_id: int) -> ResponseReturnValue:
    source = _load(workspace, table_id, source_id)
    form = SampleForm()
    if not form.validate_on_submit():
        return _source_page(workspace, membership, table_id, source_id, sample_form=form, status=422)
    try:
        service.set_sample(workspace, current_user, source, form.sample.data)
    except MorketError as exc:
        db.session.rollback()
        show_error_on_form(form, exc)
        return _source_page(workspace, membership, table_id, source_id, sample_form=form, status=exc.status)
    db.session.commit()
    flash("Sample saved: the preview shows how it maps.", "success")
    return _back(workspace, table_id, source_id, "#mapping")


@bp.post("/w/<slug>/tables/<int:table_id>/inbound/<int:source_id>/columns")
@workspace_page("tables.manage")
def add_columns(workspace: Workspace, membership: Member, table_id: int, source_id: int) -> ResponseReturnValue:
    source = _load(workspace, table_id, source_id)
    try:
        added = service.create_columns_from_sample(workspace, current_user, source, request.form.getlist("field"))
    except MorketError as exc:
        db.session.rollback()
        return _source_page(workspace, membership, table_id, source_id, error=exc, status=exc.status)
    db.session.commit()
    flash(f"Added and mapped {len(added)} column{'s' if len(added) != 1 else ''}.", "success")
    return _back(workspace, table_id, source_id, "#mapping")


@bp.post("/w/<slug>/tables/<int:table_id>/inbound/<int:source_id>/rotate")
@workspace_page("tables.manage")
def rotate(workspace: Workspace, membership: Member, table_id: int, source_id: int) -> ResponseReturnValue:
    source = _load(workspace, table_id, source_id)
    secret = service.rotate_secret(workspace, current_user, source)
    db.session.commit()
    return _source_page(workspace, membership, table_id, source_id, secret=secret)


@bp.post("/w/<slug>/tables/<int:table_id>/inbound/<int:source_id>/delete")
@workspace_page("tables.manage")
def delete(workspace: Workspace, membership: Member, table_id: int, source_id: int) -> ResponseReturnValue:
    source = _load(workspace, table_id, source_id)
    name = source.name
    service.delete_source(workspace, current_user, source)
    db.session.commit()
    flash(f"Deleted the source “{name}”. Its URL no longer takes rows; rows it wrote stay.", "success")
    return redirect(url_for("inbound.index", slug=workspace.slug, table_id=table_id), code=303)


@bp.post("/w/<slug>/tables/<int:table_id>/inbound/<int:source_id>/failures/<int:failure_id>/replay")
@workspace_page("tables.manage")
def replay(
    workspace: Workspace, membership: Member, table_id: int, source_id: int, failure_id: int
) -> ResponseReturnValue:
    source = _load(workspace, table_id, source_id)
    try:
        result = service.replay_failure(workspace, current_user, source, failure_id)
    except service.Refused as exc:
        db.session.rollback()
        service.note_replay_refused(workspace, _load(workspace, table_id, source_id), failure_id, exc)
        db.session.commit()
        flash(f"Still refused: {exc.message}", "error")
        return _back(workspace, table_id, source_id, "#failures")
    db.session.commit()
    flash(f"Replayed: {result.inserted} row(s) added, {result.updated} updated.", "success")
    return _back(workspace, table_id, source_id, "#failures")


@bp.get("/w/<slug>/tables/<int:table_id>/inbound/pulse")
@workspace_page("tables.view")
@limiter.limit(GRID_LIMIT)
def pulse(workspace: Workspace, membership: Member, table_id: int) -> Response:
    resp = jsonify({"stamp": grid_pulse.pulse(workspace, table_id)})
    resp.headers["Cache-Control"] = "no-store"
    return resp
