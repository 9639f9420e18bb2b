"""WSGI and ``flask`` CLI entry point."""

import os

from morket import create_app
from morket.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    # The flask CLI shows its "app could not be loaded" error for this one without a traceback.
    # Servers keep the exception (gunicorn stops on a worker that cannot boot).
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        raise
    from flask.cli import NoAppException

    raise NoAppException(str(exc)) from None
