"""``python -m morket.devserver`` (what ``make run`` starts): the whole of Morket on one machine.

PostgreSQL and Redis come from MORKET_DATABASE_URL / MORKET_REDIS_URL when set, else embedded
servers with their data under the var directory (MORKET_VAR_DIR, default ./var). Then: create
the database if missing, apply migrations, keep a generated secret key in var/secret_key, and
run web (gunicorn), a worker and the scheduler as children, each in its own process group so
that Ctrl-C reaches this supervisor only and it stops them in order. Ctrl-C or SIGTERM stops
every child and then the embedded servers; a child that dies on its own stops the rest.

While everything runs, ``var/env`` lists the settings this run chose (the embedded servers'
URLs, the secret key, the sandbox URLs) with the supervisor's process id, so the ``flask`` CLI
in another terminal finds them (``morket.config.with_run_env``); stopping removes the file.

Sandbox mode (MORKET_SANDBOX_MODE; on by default when no provider URL or key is configured):
the provider sandboxes run as one more child and web and worker get their URLs and demo keys,
so a newcomer can enrich a table without any API key. The UI labels the mode.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from morket.config import RUN_PID_KEY, run_env_path, var_dir, write_run_env
from morket.devservices import EmbeddedRedis, free_port, port_answers, start_embedded_postgres

ROOT = Path(__file__).resolve().parent.parent
DATABASE_NAME = "morket"
STOP_TIMEOUT_SECONDS = 15
SANDBOX_PROVIDERS = ("apollo", "hunter", "clearbit")
# The CRM sandboxes serve OAuth too: make run registers Morket with them as this demo client.
CRM_SANDBOX_CLIENTS = {
    "HUBSPOT_CLIENT_ID": "sandbox-morket-hubspot",
    "HUBSPOT_CLIENT_SECRET": "sandbox-morket-hubspot-secret",
    "SALESFORCE_CLIENT_ID": "sandbox-morket-salesforce",
    "SALESFORCE_CLIENT_SECRET": "sandbox-morket-salesforce-secret",
}
# Without a Stripe key of your own, billing runs against the Stripe sandbox with these.
STRIPE_SANDBOX_KEY = "sk_test_sandbox_morket"
STRIPE_SANDBOX_WEBHOOK_SECRET = "whsec_sandbox_morket"  # noqa: S105 - the sandbox's documented test secret
PR_SET_PDEATHSIG = 1


def say(message: str) -> None:
    print(f"[morket] {message}", flush=True)


def _die_with_parent() -> None:
    # Linux only: if the supervisor is killed outright (SIGKILL), its children get SIGTERM
    # instead of living on as orphans.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return


class DevServer:
    """Start the backing services and Morket's processes; stop them all on the way out."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.env = dict(environ)
        self.given = dict(environ)
        self.var_dir = var_dir(self.env)
        self.run_env = run_env_path(self.env)
        self.host = self.env.get("MORKET_HOST") or "127.0.0.1"
        self.port = int(self.env.get("MORKET_PORT") or 5000)
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.postgres = None
        self.redis: EmbeddedRedis | None = None
        self.stopping = False

    # -- backing services -------------------------------------------------------------------

    def ensure_postgres(self) -> None:
        if self.env.get("MORKET_DATABASE_URL"):
            say("PostgreSQL: using MORKET_DATABASE_URL")
        else:
            say(f"PostgreSQL: starting the embedded server (data in {self.var_dir / 'pg'})")
            self.postgres, server_url = start_embedded_postgres(self.var_dir / "pg")
            self.env["MORKET_DATABASE_URL"] = make_url(server_url).set(database=DATABASE_NAME).render_as_string(False)
        self.create_database_if_missing()

    def create_database_if_missing(self) -> None:
        url = make_url(self.env["MORKET_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": url.database}).first()
                if not exists:
                    say(f"PostgreSQL: creating database {url.database}")
                    conn.execute(text(f'CREATE DATABASE "{url.database}"'))
        finally:
            admin.dispose()

    def ensure_redis(self) -> None:
        if self.env.get("MORKET_REDIS_URL"):
            say("Redis: using MORKET_REDIS_URL")
            return
        say("Redis: starting the embedded Valkey")
        self.redis = EmbeddedRedis(self.var_dir / "valkey").start()
        self.env["MORKET_REDIS_URL"] = self.redis.url

    def ensure_secret_key(self) -> None:
        if self.env.get("MORKET_SECRET_KEY"):
            return
        path = self.var_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            say(f"generated a development secret key in {path}")
        self.env["MORKET_SECRET_KEY"] = path.read_text().strip()

    def migrate(self) -> None:
        say("applying database migrations")
        subprocess.run(  # our own interpreter and module
            [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=self.env, check=True
        )

    # -- provider sandboxes ----------------------------------------------------------------

    def sandbox_wanted(self) -> bool:
        """MORKET_SANDBOX_MODE when set, else on when no provider URL or key is configured."""
        raw = (self.env.get("MORKET_SANDBOX_MODE") or "").strip().lower()
        if raw:
            return raw in {"1", "true", "yes", "on"}
        names = [f"MORKET_{p.upper()}_{suffix}" for p in SANDBOX_PROVIDERS for suffix in ("URL", "API_KEY")]
        return not any(self.env.get(name) for name in names)

    def start_sandbox(self, timeout: float = 20) -> bool:
        """Run the sandboxes as a child and point web and worker at them; False if they never answer."""
        port = int(self.env.get("MORKET_SANDBOX_PORT") or free_port())
        stripe_sandbox = not self.env.get("MORKET_STRIPE_SECRET_KEY")
        if stripe_sandbox:
            # The Stripe sandbox signs its webhooks with this secret and sends them to our web server.
            self.env.setdefault("MORKET_STRIPE_WEBHOOK_SECRET", STRIPE_SANDBOX_WEBHOOK_SECRET)
            web = self.env.get("MORKET_BASE_URL") or f"http://{self.host}:{self.port}"
            self.env["MORKET_STRIPE_SANDBOX_WEBHOOK_URL"] = f"{web}/billing/stripe/webhook"
        self.spawn(
            "sandbox", [sys.executable, "-m", "morket.providers.sandboxes", "--host", "127.0.0.1", "--port", str(port)]
        )
        deadline = time.monotonic() + timeout
        while not port_answers("127.0.0.1", port):
            if self.children["sandbox"].poll() is not None or time.monotonic() > deadline or self.stopping:
                return False
            time.sleep(0.1)
        self.env["MORKET_SANDBOX_MODE"] = "true"
        for provider in SANDBOX_PROVIDERS:
            self.env[f"MORKET_{provider.upper()}_URL"] = f"http://127.0.0.1:{port}/{provider}"
            self.env.setdefault(f"MORKET_{provider.upper()}_API_KEY", f"sandbox-{provider}-key")
        base = f"http://127.0.0.1:{port}"
        self.env["MORKET_HUBSPOT_API_URL"] = self.env["MORKET_HUBSPOT_AUTH_URL"] = f"{base}/hubspot"
        self.env["MORKET_SALESFORCE_LOGIN_URL"] = f"{base}/salesforce"
        for key, value in CRM_SANDBOX_CLIENTS.items():
            self.env[f"MORKET_{key}"] = value
        if stripe_sandbox:
            self.env["MORKET_STRIPE_API_BASE"] = f"{base}/stripe"
            self.env["MORKET_STRIPE_SECRET_KEY"] = STRIPE_SANDBOX_KEY
        if not self.env.get("MORKET_AI_BASE_URL"):
            # The platform's default model endpoint: the sandbox LLM (deterministic answers, no model).
            self.env.update(
                MORKET_AI_KIND="openai",
                MORKET_AI_BASE_URL=f"{base}/openai/v1",
                MORKET_AI_API_KEY="sandbox-morket-ai",
                MORKET_AI_MODEL="sandbox-small",
                MORKET_AI_MODELS="sandbox-large",
            )
        if not self.env.get("MORKET_WEBSEARCH_API_KEY"):
            # The research agent's web search: the sandbox's (results from the index it is given).
            self.env.update(MORKET_WEBSEARCH_URL=f"{base}/websearch", MORKET_WEBSEARCH_API_KEY="sandbox-websearch")
        # Workspace model endpoints may point at the sandbox LLM (or a local Ollama) on loopback.
        self.env.setdefault("MORKET_AI_ALLOW_LOOPBACK", "true")
        stripe_note = ", Stripe (test mode)" if stripe_sandbox else ""
        say(
            f"sandbox mode: demo providers, CRMs (HubSpot, Salesforce){stripe_note}, a sandbox LLM and web search "
            f"with synthetic data at {base}"
        )
        return True

    # -- Morket's processes ---------------------------------------------------------------

    def spawn(self, name: str, argv: list[str]) -> None:
        self.children[name] = subprocess.Popen(  # noqa: S603 - fixed commands
            argv, cwd=ROOT, env=self.env, start_new_session=True, preexec_fn=_die_with_parent
        )

    def start_processes(self) -> None:
        python = sys.executable
        self.spawn(
            "web",
            [
                python, "-m", "gunicorn", "app:app", "--config", "python:morket.gunicorn_config",
                "--worker-class", "gthread", "--workers", "2", "--threads", "8",
                "--bind", f"{self.host}:{self.port}",
                "--graceful-timeout", "10", "--access-logfile", "-",
            ],
        )  # fmt: skip
        self.spawn("worker", [python, "-m", "workers"])
        # Scrapes have their own worker: one Chromium kept between jobs.
        self.spawn("scrape-worker", [python, "-m", "workers", "scrape"])
        self.spawn("scheduler", [python, "-m", "workers.scheduler"])

    def wait_for_web(self, timeout: float = 60) -> bool:
        url = f"http://{self.host}:{self.port}/healthz"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            if self.children["web"].poll() is not None:
                return False
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:  # our own loopback URL
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def publish_settings(self) -> None:
        """List in var/env every MORKET_* setting this run chose, for the flask CLI elsewhere."""
        chosen = {k: v for k, v in self.env.items() if k.startswith("MORKET_") and self.given.get(k) != v}
        write_run_env(self.run_env, chosen)

    def withdraw_settings(self) -> None:
        """Remove var/env if this run wrote it (not a file another make run wrote since)."""
        with contextlib.suppress(FileNotFoundError):
            if f"{RUN_PID_KEY}={os.getpid()}" in self.run_env.read_text().splitlines():
                self.run_env.unlink()

    def announce(self) -> None:
        base = self.env["MORKET_BASE_URL"]
        say(f"Morket is running at {base}/  (Ctrl-C stops everything)")
        say(f"Sign up at {base}/signup; emails such as the verification link land in the dev mailbox")
        say(f"at {base}/dev/mailbox")
        say("make someone platform admin with `.venv/bin/flask --app app set-admin EMAIL` in another")
        say(f"terminal in this folder: the flask CLI finds this run's servers in {self.run_env}")
        scraping = "on" if self.env.get("MORKET_METRICS_TOKEN") or self.env.get("MORKET_METRICS_ALLOW") else "off"
        say(f"{base}/metrics is {scraping}: it answers a bearer MORKET_METRICS_TOKEN or MORKET_METRICS_ALLOW networks")

    # -- running and stopping -------------------------------------------------------------

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def supervise(self) -> int:
        """Wait for a stop signal or for a child to die; return the exit status."""
        while not self.stopping:
            for name, child in self.children.items():
                if child.poll() is not None:
                    say(f"{name} exited with status {child.returncode}; stopping Morket")
                    return 1
            time.sleep(0.3)
        return 0

    def stop_children(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, child in self.children.items():
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # A second SIGTERM is a cold shutdown: the RQ worker takes its work horse down.
                say(f"{name} did not stop in {STOP_TIMEOUT_SECONDS}s; forcing it")
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(5)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            # Anything the child left in its process group (a gunicorn worker, say).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)

    def stop_services(self) -> None:
        if self.redis is not None:
            self.redis.stop()
            self.redis = None
        if self.postgres is not None:
            self.postgres.cleanup()
            self.postgres = None

    def run(self) -> int:
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        self.env.setdefault("MORKET_BASE_URL", f"http://{self.host}:{self.port}")
        self.env.setdefault("MORKET_ENV", "development")
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), self.env.get("PYTHONPATH")]))
        if port_answers(self.host, self.port):
            say(f"{self.host}:{self.port} is already in use; set MORKET_PORT to another port")
            return 1
        try:
            self.ensure_secret_key()
            self.ensure_redis()
            self.ensure_postgres()
            if self.stopping:
                return 0
            self.migrate()
            if self.sandbox_wanted() and not self.start_sandbox():
                say("the provider sandboxes did not start; stopping")
                return 1
            self.start_processes()
            if not self.wait_for_web():
                if self.stopping:
                    return 0
                say("the web process did not answer /healthz; stopping")
                return 1
            self.publish_settings()
            self.announce()
            return self.supervise()
        except subprocess.CalledProcessError as exc:
            say(f"{' '.join(map(str, exc.cmd[1:]))} failed with status {exc.returncode}")
            return 1
        finally:
            say("stopping")
            self.withdraw_settings()
            self.stop_children()
            self.stop_services()
            say("stopped")


def main() -> int:
    """Run Morket until Ctrl-C."""
    return DevServer(dict(os.environ)).run()


if __name__ == "__main__":
    raise SystemExit(main())
