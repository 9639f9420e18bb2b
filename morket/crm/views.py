"""The Connections page: connect and disconnect CRMs (admins), see status (everyone), fields (members)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_login import current_user, login_required

from morket.core.errors import MorketError
from morket.core.htmx import render_page_or_fragment
from morket.core.roles import can
from morket.core.tenancy import workspace_page
from morket.core.types import Member, Workspace
from morket.core.web import CSP
from morket.crm import bp, service
from morket.crm.providers import SPECS
from morket.extensions import db, limiter

SESSION_STATES = "crm_oauth_states"
KEEP_STATES = 5
CONNECT_LIMIT = "10 per minute"


def _no_store(resp: Response) -> Response:
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _allow_consent_pages(resp: Response, settings: dict) -> Response:
    """Let this page's Connect forms land on the CRMs' consent pages (browsers apply form-action to redirects)."""
    origins = sorted({_origin(spec.authorize_url(settings)) for spec in SPECS.values() if spec.configured(settings)})
    if origins:
        resp.headers["Content-Security-Policy"] = CSP.replace(
            "form-action 'self'", "form-action 'self' " + " ".join(origins)
        )
    return resp


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.get("/w/<slug>/connections")
@workspace_page("crm.view")
def index(workspace: Workspace, membership: Member) -> Response:
    settings = current_app.config["MORKET"]
    connections = service.list_connections(workspace)
    resp = render_page_or_fragment(
        "crm/index.html",
        workspace=workspace,
        membership=membership,
        connections=connections,
        people=service.connected_by_names(connections),
        specs=SPECS,
        configured={name: spec.configured(settings) for name, spec in SPECS.items()},
        sandbox={name: spec.is_sandbox(settings) for name, spec in SPECS.items()},
        can_manage=can(membership.role, "crm.manage"),
        can_use=can(membership.role, "crm.use"),
    )
    return _allow_consent_pages(_no_store(resp), settings)


@bp.get("/w/<slug>/connections/<provider>/fields")
@workspace_page("crm.use")
def fields(workspace: Workspace, membership: Member, provider: str) -> ResponseReturnValue:
    spec = SPECS.get(provider) or abort(404)
    objects, problem = [], None
    if service.get_connection(workspace, provider) is not None:
        try:
            objects = service.describe_objects(workspace, provider)
        except MorketError as exc:
            problem = exc.message
    db.session.commit()  # a refreshed token or the connection's health, written by the token store, stays
    return render_template(
        "crm/_fields.html",
        spec=spec,
        objects=objects,
        problem=problem,
        connected=bool(objects),
    )


@bp.post("/w/<slug>/connections/<provider>/connect")
@limiter.limit(CONNECT_LIMIT)
@workspace_page("crm.manage")
def connect(workspace: Workspace, membership: Member, provider: str) -> ResponseReturnValue:
    redirect_uri = url_for("crm.callback", provider=provider, _external=True)
    try:
        url, state = service.start_connect(workspace, current_user, provider, redirect_uri)
    except MorketError as exc:
        flash(exc.message, "error")
        return redirect(url_for("crm.index", slug=workspace.slug), code=303)
    session[SESSION_STATES] = [
        *session.get(SESSION_STATES, [])[-(KEEP_STATES - 1) :],
        state,
    ]
    return redirect(url, code=303)


@bp.get("/connections/<provider>/callback")
@login_required
def callback(provider: str) -> ResponseReturnValue:
    started = list(session.get(SESSION_STATES, []))
    state = request.args.get("state", "")
    if state in started:
        session[SESSION_STATES] = [s for s in started if s != state]  # single use, even when it fails below
    try:
        workspace, connection = service.complete_connect(
            current_user,
            provider,
            state=state,
            session_states=started,
            code=request.args.get("code"),
            error=request.args.get("error"),
        )
    except MorketError as exc:
        db.session.rollback()
        spec = SPECS.get(provider)
        resp = Response(
            render_template(
                "crm/refused.html",
                message=exc.message,
                label=spec.label if spec else "The CRM",
            ),
            status=exc.status if exc.status < 500 else 502,
        )
        return _no_store(resp)
    db.session.commit()
    flash(f"Connected {SPECS[provider].label} ({connection.account_name}).", "success")
    return redirect(url_for("crm.index", slug=workspace.slug), code=303)


@bp.post("/w/<slug>/connections/<provider>/disconnect")
@workspace_page("crm.manage")
def disconnect(workspace: Workspace, membership: Member, provider: str) -> ResponseReturnValue:
    spec = SPECS.get(provider) or abort(404)
    try:
        revoked = service.disconnect(workspace, current_user, provider)
    except MorketError as exc:
        db.session.rollback()
        flash(exc.message, "error")
        return redirect(url_for("crm.index", slug=workspace.slug), code=303)
    db.session.commit()
    if revoked:
        flash(
            f"Disconnected {spec.label}: Morket's access was revoked and its tokens deleted.",
            "success",
        )
    else:
        flash(
            f"Disconnected {spec.label} and deleted Morket's tokens, but {spec.label} did not confirm the "
            "revoke; remove Morket from the connected apps in its settings to be sure.",
            "warning",
        )
    return redirect(url_for("crm.index", slug=workspace.slug), code=303)
