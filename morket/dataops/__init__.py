"""Data operations: CSV import and export, with a record of every run."""

from flask import Blueprint, Flask

bp = Blueprint("dataops", __name__)

DEFAULT_IMPORT_MAX_BYTES = 500 * 1024 * 1024


def register(app: Flask) -> None:
    import os

    from morket.dataops import models, views  # noqa: F401 - register the models and routes (api: see morket.api)

    settings = app.config["MORKET"]
    raw_cap = os.environ.get("MORKET_IMPORT_MAX_BYTES", "").strip()
    settings.setdefault("IMPORT_MAX_BYTES", int(raw_cap) if raw_cap else DEFAULT_IMPORT_MAX_BYTES)
    folder = os.environ.get("MORKET_DATAOPS_DIR", "").strip() or app.instance_path + "/dataops"
    settings.setdefault("DATAOPS_DIR", folder)
    app.register_blueprint(bp)
