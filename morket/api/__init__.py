"""The JSON API at /api/v1: bearer tokens, no cookies, no CSRF, one envelope; its docs page at /api/docs."""

from flask import Blueprint, Flask

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def register(app: Flask) -> None:
    """Register the blueprint. The domains' handlers (their ``api`` modules) joined it already:
    ``create_app`` loads them first (``API_MODULES``), since this package knows no domain's API."""
    from morket.api import auth, openapi, views  # noqa: F401
    from morket.extensions import csrf

    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(openapi.docs_bp)
