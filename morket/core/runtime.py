"""Process-wide settings for Morket's long-running processes (web workers and job workers)."""

from __future__ import annotations

import gc


def freeze_loaded_objects() -> None:
    """Keep what is loaded now out of the garbage collector's passes for the life of the process.

    Called once the app is loaded: its modules, SQLAlchemy's and Jinja's compiled objects and
    the caches filled at start-up live as long as the process. Left in the collected
    generations, each full pass walks all of them again: about 180,000 objects and 100 ms with
    the app loaded (docs/PERFORMANCE.md), paid by whichever request or job triggers it, with
    the GIL held. Objects created later are collected as usual. In a process that forks (RQ's
    work horses), the frozen objects' pages also stay shared with the parent.
    """
    gc.collect()
    gc.freeze()
