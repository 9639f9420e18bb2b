"""The JSON API at /api/v1: bearer tokens, no cookies, no CSRF, one envelope; its docs page at /api/docs."""

from flask import Blueprint, Flask

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def register(app: Flask) -> None:
    from morket.api import auth, openapi, views  # noqa: F401
    from morket.credentials import api as credentials_api  # noqa: F401
    from morket.credits import api as credits_api  # noqa: F401
    from morket.dataops import api as dataops_api  # noqa: F401
    from morket.enrichment import api as enrichment_api  # noqa: F401
    from morket.extensions import csrf
    from morket.scraping import api as scraping_api  # noqa: F401
    from morket.tables import api as tables_api  # noqa: F401

    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(openapi.docs_bp)
