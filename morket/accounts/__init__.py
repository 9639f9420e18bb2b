"""Accounts: sign up, verification, log in and out, password reset and change, lockout."""

from flask import Blueprint, Flask

bp = Blueprint("accounts", __name__)


def register(app: Flask) -> None:
    from morket.accounts import views  # noqa: F401

    app.register_blueprint(bp)
