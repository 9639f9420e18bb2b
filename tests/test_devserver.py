"""``python -m morket.devserver`` with nothing configured: it comes up, answers, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from morket.devservices import free_port

ROOT = Path(__file__).resolve().parent.parent


def get_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def postmaster(var_dir: Path) -> psutil.Process:
    pid = int((var_dir / "pg" / "postmaster.pid").read_text().splitlines()[0])
    return psutil.Process(pid)


@pytest.mark.timeout(120)
def test_devserver_runs_everything_and_stops_every_process_on_ctrl_c(tmp_path):
    var_dir = tmp_path / "var"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"MORKET_DATABASE_URL", "MORKET_REDIS_URL"}}
    env.update(MORKET_VAR_DIR=str(var_dir), MORKET_PORT=str(port), MORKET_LOG_LEVEL="WARNING", MORKET_ENV="development")
    log_path = tmp_path / "devserver.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "morket.devserver"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while get_status(f"{base}/readiness") != 200:
            assert server.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "Morket did not become ready:\n" + log_path.read_text()
            time.sleep(0.3)
        assert get_status(f"{base}/healthz") == 200
        assert get_status(f"{base}/signup") == 200

        supervisor = psutil.Process(server.pid)
        processes = [*supervisor.children(recursive=True)]
        database = postmaster(var_dir)
        processes += [database, *database.children(recursive=True)]
        commands = " ".join(" ".join(p.cmdline()) for p in processes)
        for expected in ("gunicorn", "-m workers", "workers.scheduler", "valkey-server", "postgres"):
            assert expected in commands, f"{expected} is not running"
        assert (var_dir / "secret_key").stat().st_mode & 0o077 == 0

        # The flask CLI in a second terminal, with no URL set, finds this run's servers in var/env.
        listed = (var_dir / "env").read_text()
        assert (var_dir / "env").stat().st_mode & 0o077 == 0
        assert "MORKET_DATABASE_URL=" in listed and "MORKET_REDIS_URL=redis://127.0.0.1:" in listed
        cli_env = {k: v for k, v in env.items() if k not in {"MORKET_PORT", "MORKET_LOG_LEVEL"}}
        cli = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "flask"), "--app", "app", "set-admin", "nobody@example.com"],
            cwd=ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "no user with email nobody@example.com" in cli.stderr, cli.stderr

        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=40) == 0, log_path.read_text()
        gone, alive = psutil.wait_procs(processes, timeout=10)
        assert alive == [], f"left running: {[p.cmdline() for p in alive]}"
        assert "stopped" in log_path.read_text()
        assert not (var_dir / "env").exists(), "var/env outlived the servers it lists"
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
