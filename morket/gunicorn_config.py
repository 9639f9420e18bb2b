"""Gunicorn settings for Morket's web process (``gunicorn --config python:morket.gunicorn_config``).

Worker count, threads and the address stay on the command line (``docker/entrypoint.sh``,
``morket/devserver.py``); this module holds what belongs to every deployment.
"""

from __future__ import annotations

from typing import Any

# gunicorn's largest request line (its default is 4094). Every request the API document allows fits
# well inside it (the longest, a cell read with 500 row ids, is capped at 4,000 characters of query),
# and the app answers a too-long query parameter with a JSON 422; only a line longer than this gets
# gunicorn's own 414 before the app sees it.
limit_request_line = 8190


def post_worker_init(worker: Any) -> None:  # gunicorn's hook signature
    """Once a worker has loaded the app, freeze what it loaded (see ``freeze_loaded_objects``).

    Live grid streams each hold one of the worker's threads: at most half of them may (and at
    most ``MORKET_LIVE_STREAMS``), so pages are always served.
    """
    from morket.core.runtime import freeze_loaded_objects
    from morket.tables.live import SLOTS

    SLOTS.cap = max(1, int(getattr(worker.cfg, "threads", 2) or 2) // 2)
    freeze_loaded_objects()
