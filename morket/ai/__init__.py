"""AI: model endpoints (OpenAI-compatible and Anthropic), AI columns run by the row-run engine,
natural-language filters and the research agent."""

from flask import Blueprint, Flask

bp = Blueprint("ai", __name__)


def register(app: Flask) -> None:
    from morket.ai import views  # noqa: F401 - register the routes (api: see morket.api)
    from morket.ai import column_models, executor  # noqa: F401 - AI columns' tables, and their run executor

    app.register_blueprint(bp)
