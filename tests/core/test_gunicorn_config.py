"""The web process's gunicorn settings: each worker freezes what it loaded once the app is up."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from morket.devservices import free_port

ROOT = Path(__file__).resolve().parents[2]

# A stand-in app for the worker to load: it answers with the worker's count of frozen objects.
APP = """
import gc

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(gc.get_freeze_count()).encode()]
"""


def frozen_count(app_dir: Path, *config: str) -> int:
    port = free_port()
    log = app_dir / "gunicorn.log"
    with log.open("wb") as errors:
        server = subprocess.Popen(  # fixed command
            [
                sys.executable,
                "-m",
                "gunicorn",
                "freeze_app:app",
                *config,
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{port}",
            ],
            cwd=app_dir,
            env={"PYTHONPATH": f"{app_dir}:{ROOT}", "PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as resp:  # loopback
                    return int(resp.read())
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"gunicorn did not answer: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=15)


@pytest.mark.timeout(90)
def test_a_worker_started_with_morkets_config_has_frozen_what_it_loaded(tmp_path):
    (tmp_path / "freeze_app.py").write_text(APP)
    assert frozen_count(tmp_path) == 0  # without the config: nothing frozen, so the check below can fail
    assert frozen_count(tmp_path, "--config", "python:morket.gunicorn_config") > 1000
