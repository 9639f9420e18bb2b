"""Data operations: CSV import and export, with a record of every run."""

from flask import Blueprint, Flask

bp = Blueprint("dataops", __name__)


def register(app: Flask) -> None:
    from morket.dataops import dedupe_views, models, views  # noqa: F401 - register the models and routes (api: see morket.api)

    settings = app.config["MORKET"]
    if not settings.get("DATAOPS_DIR"):
        settings["DATAOPS_DIR"] = app.instance_path + "/dataops"
    app.register_blueprint(bp)
