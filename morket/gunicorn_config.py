"""Gunicorn settings for Morket's web process (``gunicorn --config python:morket.gunicorn_config``).

Worker count, threads and the address stay on the command line (``docker/entrypoint.sh``,
``morket/devserver.py``); this module holds what belongs to every deployment.
"""

from __future__ import annotations

from typing import Any


def post_worker_init(worker: Any) -> None:  # noqa: ARG001 - gunicorn's hook signature
    """Once a worker has loaded the app, freeze what it loaded (see ``freeze_loaded_objects``)."""
    from morket.core.runtime import freeze_loaded_objects

    freeze_loaded_objects()
