"""Accounts: sign up, verification, log in and out, password reset and change, lockout."""

from flask import Blueprint, Flask

bp = Blueprint("accounts", __name__)


def register(app: Flask) -> None:
    from morket.accounts import views  # noqa: F401
    from morket.accounts.models import User
    from morket.accounts.service import parse_session_id
    from morket.core.tenancy import register_accounts

    register_accounts(user_model=User, parse_session_id=parse_session_id)
    app.register_blueprint(bp)
