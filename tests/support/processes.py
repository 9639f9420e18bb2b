"""Killing a real worker the way a crash does: the worker and the work horse it forked.

RQ starts each job's work horse in a session of its own, so a signal to the worker's process
group alone leaves the horse running the job to its end, and a "kill mid-job" test would test
nothing. ``kill_tree`` signals the group and then every descendant found before it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

import psutil


def kill_tree(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
    """Send ``sig`` to ``proc``'s process group and to each of its descendants; wait for them all."""
    if proc.poll() is None:
        try:
            children = psutil.Process(proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            children = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.send_signal(sig)
        psutil.wait_procs(children, timeout=timeout)
    proc.wait(timeout=timeout)
