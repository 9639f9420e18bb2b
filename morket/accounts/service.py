"""Account services: every write about users goes through here. They flush; views commit."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from flask import current_app
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from morket.accounts.models import LoginFailure, RefreshToken, User, UserSession, UserToken
from morket.core.db import utcnow
from morket.core.errors import Conflict, Forbidden, Locked, Unauthorized, ValidationFailed
from morket.core.logging import log_security_event
from morket.core.security import hash_password, hash_token, needs_rehash, new_token, verify_password
from morket.core.tenancy import preloaded_session_user
from morket.extensions import db
from morket.mail.service import absolute_url, send_email

PASSWORD_MIN = 10
PASSWORD_MAX = 128
NAME_MAX = 120
EMAIL_MAX = 320

PURPOSE_VERIFY = "verify_email"
PURPOSE_RESET = "reset_password"
TOKEN_LIFETIMES = {PURPOSE_VERIFY: timedelta(hours=48), PURPOSE_RESET: timedelta(hours=1)}

LOCKOUT_FAILURES = 5
LOCKOUT_WINDOW = timedelta(minutes=15)
LOCKOUT_DURATION = timedelta(minutes=15)

BAD_CREDENTIALS = "Incorrect email or password."

SESSION_KEY_BYTES = 32
SESSION_KEY = re.compile(r"[A-Za-z0-9_-]{43}")


class SessionRef(NamedTuple):
    """What a browser's session cookie names: the user and the random key of its server-side session."""

    user_id: int
    key: str


def parse_session_id(session_id: str | None) -> SessionRef | None:
    """Return the user id and session key of a session id ``<user id>:<session key>``, or None."""
    user_id, _, key = (session_id or "").partition(":")
    if not user_id.isdigit() or not SESSION_KEY.fullmatch(key):
        return None
    return SessionRef(int(user_id), key)


def _live_session_clause(key_hash: str):
    return and_(UserSession.key_hash == key_hash, UserSession.ended_at.is_(None), UserSession.expires_at > func.now())


def load_user_from_session_id(session_id: str) -> User | None:
    """flask-login loader: the user of a live server-side session; an ended or expired one logs the browser out."""
    ref = parse_session_id(session_id)
    if ref is None:
        return None
    preloaded = preloaded_session_user(ref.user_id)
    if preloaded is not None:  # read with the membership, the session's liveness included (core/tenancy.py)
        return preloaded if preloaded.session_live and preloaded.is_active else None
    user = db.session.scalar(
        select(User)
        .join(UserSession, UserSession.user_id == User.id)
        .where(User.id == ref.user_id, _live_session_clause(hash_token(ref.key)))
    )
    if user is None or not user.is_active:
        return None
    user.browser_session_id = session_id
    return user


def start_session(user: User, *, ip: str = "", user_agent: str = "") -> str:
    """Record a new browser session of ``user`` and return its id (what the cookie carries).

    Also sets ``user.browser_session_id`` so that flask-login's ``login_user(user)`` stores it.
    """
    key = new_token(SESSION_KEY_BYTES)
    db.session.add(
        UserSession(
            user_id=user.id,
            key_hash=hash_token(key),
            expires_at=utcnow() + current_app.permanent_session_lifetime,
            ip=ip[:64],
            user_agent=user_agent[:255],
        )
    )
    db.session.flush()
    user.browser_session_id = f"{user.id}:{key}"
    return user.browser_session_id


def end_session(session_id: str | None) -> bool:
    """End the browser session ``session_id`` on the server; return whether a live one was ended."""
    ref = parse_session_id(session_id)
    if ref is None:
        return False
    result = db.session.execute(
        update(UserSession)
        .where(UserSession.user_id == ref.user_id, _live_session_clause(hash_token(ref.key)))
        .values(ended_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    return bool(result.rowcount)


def end_all_sessions(user: User, *, keep: str | None = None) -> int:
    """End every browser session of ``user`` but ``keep`` and revoke every API refresh token; return
    how many browser sessions ended.

    Revoking a token family also refuses the access tokens issued from it (``api/tokens.py``).
    """
    now = utcnow()
    ending = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    kept = parse_session_id(keep)
    if kept is not None:
        ending = ending.where(UserSession.key_hash != hash_token(kept.key))
    ended = db.session.execute(ending.values(ended_at=now), execution_options={"synchronize_session": False})
    db.session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now),
        execution_options={"synchronize_session": False},
    )
    db.session.flush()
    return ended.rowcount or 0


def normalize_email(email: str) -> str:
    """Return the stored form of an email address: trimmed and lower-case."""
    return email.strip().lower()


def get_user_by_email(email: str) -> User | None:
    """Return the user with ``email`` (case-insensitive), or None."""
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def name_problem(name: str) -> str | None:
    """Return why ``name`` cannot be a display name (empty, too long, control characters), or None."""
    name = name.strip()
    if not name:
        return "Enter your name."
    if len(name) > NAME_MAX:
        return f"Use at most {NAME_MAX} characters."
    if any(unicodedata.category(ch) in {"Cc", "Cs"} or ch in _BIDI_CONTROLS for ch in name):
        return "Use letters, digits, spaces and punctuation only."
    return None


def _clean_name(name: str) -> str:
    problem = name_problem(name)
    if problem:
        raise ValidationFailed(problem, fields={"name": [problem]})
    return name.strip()


def check_password_policy(password: str, email: str) -> None:
    """Raise ValidationFailed unless ``password`` is 10-128 characters and not the email address."""
    problems: list[str] = []
    if len(password) < PASSWORD_MIN:
        problems.append(f"Use at least {PASSWORD_MIN} characters.")
    elif len(password) > PASSWORD_MAX:
        problems.append(f"Use at most {PASSWORD_MAX} characters.")
    elif password.strip().lower() == normalize_email(email):
        problems.append("Your password cannot be your email address.")
    if problems:
        raise ValidationFailed(problems[0], fields={"password": problems})


def require_verified(user: User) -> None:
    """Raise Forbidden unless ``user`` has confirmed their email (needed to create or join workspaces)."""
    if not user.is_verified:
        raise Forbidden("Confirm your email address first: we sent you a link when you signed up.")


def _issue_token(user: User, purpose: str) -> str:
    token = new_token()
    db.session.add(
        UserToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_token(token),
            expires_at=utcnow() + TOKEN_LIFETIMES[purpose],
        )
    )
    db.session.flush()
    return token


def _live_token(token: str, purpose: str) -> UserToken | None:
    if not token or len(token) > 200:
        return None
    return db.session.scalar(
        select(UserToken)
        .where(
            UserToken.token_hash == hash_token(token),
            UserToken.purpose == purpose,
            UserToken.used_at.is_(None),
            UserToken.expires_at > utcnow(),
        )
        .with_for_update()
    )


def send_verification_email(user: User) -> None:
    """Email ``user`` a fresh single-use link (48 hours) that confirms their address."""
    token = _issue_token(user, PURPOSE_VERIFY)
    send_email(
        user.email,
        "Confirm your email for Morket",
        "verify_email",
        user=user,
        link=absolute_url("accounts.verify_email", token=token),
    )


def register_user(email: str, name: str, password: str) -> User:
    """Create an unverified account and email it a verification link; Conflict if the email is taken."""
    email = normalize_email(email)
    if not email or "@" not in email or len(email) > EMAIL_MAX or "\x00" in email:
        raise ValidationFailed("Enter a valid email address.", fields={"email": ["Enter a valid email address."]})
    name = _clean_name(name)
    check_password_policy(password, email)
    taken = "An account with this email already exists. Log in, or reset your password."
    if get_user_by_email(email) is not None:
        raise Conflict(taken, fields={"email": [taken]})
    user = User(email=email, name=name, password_hash=hash_password(password))
    try:
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError:
        raise Conflict(taken, fields={"email": [taken]}) from None
    send_verification_email(user)
    return user


def resend_verification(user: User) -> bool:
    """Send ``user`` a new verification link unless already verified; return whether one was sent."""
    if user.is_verified:
        return False
    send_verification_email(user)
    return True


def verify_email(token: str) -> User:
    """Consume a verification token and mark its user's email as confirmed."""
    row = _live_token(token, PURPOSE_VERIFY)
    if row is None:
        raise ValidationFailed("This confirmation link is invalid, already used or expired.")
    row.used_at = utcnow()
    user = db.session.get(User, row.user_id)
    if user.email_verified_at is None:
        user.email_verified_at = utcnow()
    db.session.flush()
    return user


@dataclass(frozen=True)
class LockState:
    locked: bool
    until: datetime | None = None


def lock_state(user: User, now: datetime | None = None) -> LockState:
    """Whether ``user`` is locked out: 5 failures within 15 minutes lock it for 15 minutes from the 5th."""
    now = now or utcnow()
    recent = db.session.scalars(
        select(LoginFailure.at)
        .where(LoginFailure.user_id == user.id, LoginFailure.at > now - LOCKOUT_WINDOW - LOCKOUT_DURATION)
        .order_by(LoginFailure.at.desc())
        .limit(LOCKOUT_FAILURES)
    ).all()
    # Attempts refused during a lock are not recorded, so the newest failure is the one that locked.
    if len(recent) < LOCKOUT_FAILURES or recent[0] - recent[-1] > LOCKOUT_WINDOW:
        return LockState(False)
    until = recent[0] + LOCKOUT_DURATION
    return LockState(now < until, until if now < until else None)


def _locked_error(until: datetime) -> Locked:
    minutes = max(1, int((until - utcnow()).total_seconds() + 59) // 60)
    return Locked(
        "Too many failed attempts: this account is locked for now. "
        f"Try again in {minutes} minute{'s' if minutes != 1 else ''} (after {until.strftime('%H:%M')} UTC), "
        "or reset your password."
    )


def lock_message(email: str) -> str | None:
    """Return the lock message for the account of ``email`` while it is locked, else None.

    For pages that answer an attempt without checking the password (a rate limit answered
    first): the account's lock is what the person needs to know.
    """
    user = get_user_by_email(email) if email and len(email) <= EMAIL_MAX else None
    state = lock_state(user) if user is not None else LockState(False)
    return _locked_error(state.until).message if state.locked else None


def authenticate(email: str, password: str, ip: str = "") -> User:
    """Return the user for these credentials, counting failures towards the account lockout.

    Raises Unauthorized (wrong email or password), Locked (too many failures) or Forbidden
    (disabled). A failure row is flushed before raising, so the view must still commit.
    """
    user = get_user_by_email(email) if len(email) <= EMAIL_MAX else None
    if user is None:
        verify_password(None, password)  # the same work as a real check, so timing does not reveal accounts
        log_security_event("login_failed", reason="unknown_email", ip=ip)
        raise Unauthorized(BAD_CREDENTIALS)
    state = lock_state(user)
    if state.locked:
        log_security_event("login_refused_locked", user_id=user.id, ip=ip, locked_until=state.until.isoformat())
        raise _locked_error(state.until)
    if not verify_password(user.password_hash, password):
        db.session.add(LoginFailure(user_id=user.id, ip=ip[:64], at=utcnow()))
        db.session.flush()
        log_security_event("login_failed", reason="bad_password", user_id=user.id, ip=ip)
        state = lock_state(user)
        if state.locked:
            log_security_event("account_locked", user_id=user.id, ip=ip, locked_until=state.until.isoformat())
            raise _locked_error(state.until)
        raise Unauthorized(BAD_CREDENTIALS)
    if not user.is_active:
        log_security_event("login_refused_disabled", user_id=user.id, ip=ip)
        raise Forbidden("This account is disabled. Contact your Morket administrator.")
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = utcnow()
    db.session.execute(delete(LoginFailure).where(LoginFailure.user_id == user.id))
    db.session.flush()
    return user


def _notify_password_changed(user: User) -> None:
    send_email(
        user.email,
        "Your Morket password was changed",
        "password_changed",
        user=user,
        link=absolute_url("accounts.forgot_password"),
    )


def request_password_reset(email: str) -> None:
    """Email a 1-hour reset link if an active account has ``email``; say nothing either way."""
    user = get_user_by_email(email) if len(email) <= EMAIL_MAX else None
    if user is None or not user.is_active:
        log_security_event("password_reset_unknown_email")
        return
    token = _issue_token(user, PURPOSE_RESET)
    send_email(
        user.email,
        "Reset your Morket password",
        "reset_password",
        user=user,
        link=absolute_url("accounts.reset_password", token=token),
    )


def check_reset_token(token: str) -> bool:
    """Whether ``token`` is a live password-reset token (without using it)."""
    if not token or len(token) > 200:
        return False
    return bool(
        db.session.scalar(
            select(func.count(UserToken.id)).where(
                UserToken.token_hash == hash_token(token),
                UserToken.purpose == PURPOSE_RESET,
                UserToken.used_at.is_(None),
                UserToken.expires_at > utcnow(),
            )
        )
    )


def reset_password(token: str, new_password: str) -> User:
    """Set a new password from a reset token; void other reset tokens and end every session."""
    row = _live_token(token, PURPOSE_RESET)
    if row is None:
        raise ValidationFailed("This reset link is invalid, already used or expired. Ask for a new one.")
    user = db.session.get(User, row.user_id)
    check_password_policy(new_password, user.email)
    now = utcnow()
    db.session.execute(
        update(UserToken)
        .where(UserToken.user_id == user.id, UserToken.purpose == PURPOSE_RESET, UserToken.used_at.is_(None))
        .values(used_at=now)
    )
    user.password_hash = hash_password(new_password)
    # Proving control of the mailbox ends a lockout the owner may have been caught in.
    db.session.execute(delete(LoginFailure).where(LoginFailure.user_id == user.id))
    ended = end_all_sessions(user)
    _notify_password_changed(user)
    log_security_event("password_reset", user_id=user.id, sessions_ended=ended)
    return user


def change_password(user: User, current_password: str, new_password: str) -> User:
    """Change ``user``'s password after checking the current one; end every other session.

    The browser session ``user`` was loaded through (``user.browser_session_id``) stays logged in.
    """
    if not verify_password(user.password_hash, current_password):
        log_security_event("password_change_refused", user_id=user.id)
        message = "Your current password is not correct."
        raise ValidationFailed(message, fields={"current_password": [message]})
    check_password_policy(new_password, user.email)
    user.password_hash = hash_password(new_password)
    ended = end_all_sessions(user, keep=user.browser_session_id)
    _notify_password_changed(user)
    log_security_event("password_changed", user_id=user.id, sessions_ended=ended)
    return user


def update_profile(user: User, name: str) -> User:
    """Change ``user``'s display name."""
    user.name = _clean_name(name)
    db.session.flush()
    return user
