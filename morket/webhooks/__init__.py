"""Outbound webhooks: endpoints per workspace, events from the outbox, signed (Standard Webhooks) deliveries."""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("webhooks", __name__)


def register(app: Flask) -> None:
    from morket.webhooks import emitters, models, views  # noqa: F401 - register the models and routes (api: see morket.api)

    emitters.register()
    app.register_blueprint(bp)
