"""Morket: the GTM data engine. ``create_app`` builds the Flask app; nothing happens at import."""

from __future__ import annotations

from typing import Any

from flask import Flask
from redis import Redis
from werkzeug.middleware.proxy_fix import ProxyFix

from morket.config import ConfigError, flask_config, load_settings, missing_service_message

BLUEPRINT_MODULES = (
    "morket.system",
    "morket.accounts",
    "morket.workspaces",
    "morket.admin",
    "morket.api",
    "morket.tables",
    "morket.dataops",
    "morket.credentials",
    "morket.credits",
    "morket.enrichment",
    "morket.scraping",
    "morket.inbound",
    "morket.crm",
    "morket.webhooks",
    "morket.ai",
    "morket.billing",
    "morket.search",
)
# The domains' JSON API handlers. Each adds its routes to the /api/v1 blueprint, so they are loaded
# before that blueprint is registered; the API package itself imports no domain's handlers.
API_MODULES = (
    "morket.credentials.api",
    "morket.credits.api",
    "morket.crm.api",
    "morket.dataops.api",
    "morket.enrichment.api",
    "morket.scraping.api",
    "morket.tables.api",
    "morket.inbound.api",
    "morket.webhooks.api",
    "morket.ai.api",
    "morket.ai.column_api",
    "morket.billing.api",
    "morket.search.api",
)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the app from MORKET_* settings, with ``config`` overriding Flask keys (tests)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    app = Flask(
        __name__,
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    settings = load_settings()
    app.config.update(flask_config(settings))
    if config:
        config = dict(config)
        app.config["MORKET"] = {**app.config["MORKET"], **config.pop("MORKET", {})}
        app.config["ENV_NAME"] = app.config["MORKET"]["ENV"]
        app.config.update(config)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        raise ConfigError(missing_service_message("MORKET_DATABASE_URL"))
    if not app.config.get("REDIS_URL"):
        raise ConfigError(missing_service_message("MORKET_REDIS_URL"))

    from morket.core.logging import configure_logging

    if not app.config.get("TESTING"):
        configure_logging(app.config["MORKET"]["LOG_LEVEL"])
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]

    _init_extensions(app)

    from morket.core.web import install_web

    install_web(app)

    import importlib

    for module_name in API_MODULES:
        importlib.import_module(module_name)
    for module_name in BLUEPRINT_MODULES:
        importlib.import_module(module_name).register(app)

    from morket.cli import register_cli

    register_cli(app)
    return app


def _init_extensions(app: Flask) -> None:
    from morket.extensions import csrf, db, limiter, login_manager, migrate

    redis_url = app.config["REDIS_URL"]
    app.extensions["morket_redis"] = Redis.from_url(
        redis_url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )
    if app.config.get("RATELIMIT_STORAGE_URI", "memory://") == "memory://":
        app.config["RATELIMIT_STORAGE_URI"] = redis_url
    app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 2, "socket_timeout": 2})
    # A moving window: "100 a minute" means any 60 seconds, not a clock minute that a burst can straddle.
    app.config.setdefault("RATELIMIT_STRATEGY", "moving-window")
    # Redis down must not take the site down with it: limits fail open, and say so in the log.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(app.root_path + "/../migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.login_message = "Please log in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    import morket.accounts.models
    import morket.core.models  # register tables with the metadata
    import morket.workspaces.models  # noqa: F401
    from morket.accounts.service import load_user_from_session_id

    login_manager.user_loader(load_user_from_session_id)

    from morket.core.jobs import relay_committed

    @app.after_request
    def _relay_outbox(resp):
        relay_committed()
        return resp
