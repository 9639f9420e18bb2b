"""AI: model endpoints (OpenAI-compatible and Anthropic), AI columns run by the row-run engine,
natural-language filters and the research agent."""

from flask import Blueprint, Flask

bp = Blueprint("ai", __name__)


def register(app: Flask) -> None:
    # register the routes (api: see morket.api), AI columns' tables, pages and run executor
    from morket.ai import column_models, column_views, executor, research_views, views  # noqa: F401

    app.register_blueprint(bp)
