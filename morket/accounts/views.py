"""Sign up, log in and out, email confirmation, password reset and account settings."""

from __future__ import annotations

import re

from flask import flash, redirect, render_template, request, session, url_for
from flask_limiter.errors import RateLimitExceeded
from flask_login import current_user, login_required, login_user, logout_user

from morket.accounts import bp, service
from morket.accounts.forms import (
    ChangePasswordForm,
    ForgotPasswordForm,
    LoginForm,
    ProfileForm,
    ResetPasswordForm,
    SignupForm,
)
from morket.accounts.models import User
from morket.core.errors import Conflict, Forbidden, Locked, Unauthorized, ValidationFailed
from morket.core.forms import show_error_on_form
from morket.core.ratelimit import AUTH_LIMIT, client_ip
from morket.core.web import rate_limited_response, safe_next
from morket.extensions import db, limiter

_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


def _log_in(user: User) -> None:
    """Start a server-side session for ``user`` and give this browser its cookie (after the commit)."""
    service.start_session(user, ip=client_ip(), user_agent=request.user_agent.string)
    db.session.commit()
    login_user(user)


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("system.index"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            user = service.register_user(form.email.data, form.name.data, form.password.data)
        except (ValidationFailed, Conflict) as exc:
            db.session.rollback()
            show_error_on_form(form, exc)
        else:
            _log_in(user)
            return redirect(url_for("accounts.check_inbox"))
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/signup.html", form=form), status


@bp.get("/signup/check-inbox")
@login_required
def check_inbox():
    if current_user.is_verified:
        return redirect(url_for("system.index"))
    return render_template("accounts/check_inbox.html")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    if current_user.is_authenticated:
        return redirect(safe_next(form.next.data) or url_for("system.index"))
    status = 200
    if form.validate_on_submit():
        try:
            user = service.authenticate(form.email.data, form.password.data, ip=client_ip())
        except (Unauthorized, Locked, Forbidden) as exc:
            # Commit the failure row: the lockout counts it even though the request fails.
            db.session.commit()
            form.form_errors.append(exc.message)
            status = exc.status
        else:
            _log_in(user)
            return redirect(safe_next(form.next.data) or url_for("system.index"))
    elif request.method == "POST":
        status = 422
    return render_template("accounts/login.html", form=form), status


@bp.errorhandler(RateLimitExceeded)
def _rate_limited(exc: RateLimitExceeded):
    """While an account is locked, every further login attempt shows the lock and when it ends,
    whichever limit answered first (5 failures lock the account; the 6th attempt within a minute
    also meets the per-address limit)."""
    if request.endpoint == "accounts.login" and request.method == "POST":
        form = LoginForm()
        message = service.lock_message(service.normalize_email(request.form.get("email", "")))
        if message:
            form.form_errors.append(message)
            return render_template("accounts/login.html", form=form), Locked.status
    return rate_limited_response(exc)


@bp.post("/logout")
def logout():
    # End the session on the server first: a copy of the cookie is refused from now on.
    if service.end_session(session.get("_user_id")):
        db.session.commit()
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("system.index"))


@bp.post("/settings/sessions/end")
@limiter.limit(AUTH_LIMIT)
@login_required
def end_all_sessions():
    """Log out everywhere: every browser (this one too) and every API token of the account."""
    ended = service.end_all_sessions(current_user)
    db.session.commit()
    logout_user()
    flash(
        f"You are logged out everywhere: {ended} browser session{'s' if ended != 1 else ''} (this one included)"
        " and every API token of your account. Log in again to continue.",
        "success",
    )
    return redirect(url_for("accounts.login"))


@bp.get("/verify/<token>")
def verify_email(token: str):
    try:
        if not _TOKEN.fullmatch(token):
            raise ValidationFailed("This confirmation link is invalid, already used or expired.")
        service.verify_email(token)
    except ValidationFailed as exc:
        db.session.rollback()
        return render_template("accounts/link_invalid.html", message=exc.message, kind="verify"), 400
    db.session.commit()
    flash("Your email is confirmed. You can now create or join a workspace.", "success")
    return redirect(url_for("system.index") if current_user.is_authenticated else url_for("accounts.login"))


@bp.post("/verify/resend")
@limiter.limit(AUTH_LIMIT, methods=["POST"])
@login_required
def resend_verification():
    if service.resend_verification(current_user):
        db.session.commit()
        flash(f"We sent a new confirmation link to {current_user.email}.", "success")
        return redirect(url_for("accounts.check_inbox"))
    flash("Your email is already confirmed.", "info")
    return redirect(url_for("system.index"))


@bp.route("/forgot", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        service.request_password_reset(form.email.data)
        db.session.commit()
        return render_template("accounts/forgot_sent.html", email=form.email.data)
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/forgot.html", form=form), status


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
def reset_password(token: str):
    invalid = "This reset link is invalid, already used or expired. Ask for a new one."
    if not _TOKEN.fullmatch(token) or not service.check_reset_token(token):
        return render_template("accounts/link_invalid.html", message=invalid, kind="reset"), 400
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            service.reset_password(token, form.password.data)
        except ValidationFailed as exc:
            db.session.rollback()
            show_error_on_form(form, exc)
        else:
            db.session.commit()
            logout_user()
            flash("Your password is changed and every other session is logged out. Log in with the new one.", "success")
            return redirect(url_for("accounts.login"))
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/reset.html", form=form, token=token), status


@bp.route("/settings", methods=["GET", "POST"])
@limiter.limit(AUTH_LIMIT, methods=["POST"])
@login_required
def settings():
    profile = ProfileForm(prefix="profile")
    password = ChangePasswordForm(prefix="password")
    status = 200
    if request.method == "GET":
        profile.name.data = current_user.name
    elif profile.save_profile.data:
        if profile.validate():
            service.update_profile(current_user, profile.name.data)
            db.session.commit()
            flash("Your name is saved.", "success")
            return redirect(url_for("accounts.settings"))
        status = 422
    elif password.change_password.data:
        if password.validate():
            try:
                service.change_password(current_user, password.current_password.data, password.new_password.data)
            except ValidationFailed as exc:
                db.session.rollback()
                show_error_on_form(password, exc)
                status = 422
            else:
                db.session.commit()
                flash("Your password is changed. Every other browser and API session was logged out.", "success")
                return redirect(url_for("accounts.settings"))
        else:
            status = 422
    else:
        status = 400
    if not profile.name.data:
        profile.name.data = current_user.name
    return render_template("accounts/settings.html", profile=profile, password=password), status
