"""Enrichment bench: two real workers against the Hunter sandbox, at its rate limit and at zero latency.

Usage: ``python -m bench.enrichment --rows 1000``

Starts the provider sandbox in this process and two ``python -m workers enrichment`` processes,
then runs an email-finder column over N fresh rows twice, in the bench database
(``MORKET_BENCH_DATABASE_URL``, else ``morket_bench_enrichment`` on 127.0.0.1:5432, created and
migrated when missing) and on ``MORKET_REDIS_URL`` (else ``redis://127.0.0.1:6379/0``):

- rate phase: the sandbox allows ``--allowed-rate`` requests per second (default 50, burst the
  same) and Morket is configured with that rate. ``ratios.rate_over_allowed`` is the request rate
  the sandbox saw (its own request log, first to last answered request) over the allowed rate;
  ``figures.http_429_steady`` counts 429 answers after the first second (goal 0).
- overhead phase: the sandbox answers at once with no rate limit. Everything the run takes is
  Morket's own queueing and bookkeeping (claiming, reading rows, limiter and breaker round trips,
  writing attempts, charges, cells and states): ``figures.overhead_ms_per_row`` is the run's wall
  time (created to finished, two workers) over N. On a shared machine wall time includes waiting
  for a core, so the phase also reports CPU per row: ``worker_cpu_ms_per_row`` (the two worker
  processes and their work horses) and ``db_cpu_ms_per_row`` (the database backends they opened,
  sampled from /proc, so only when PostgreSQL runs on this machine).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bench.common import bench_workspace, ensure_database, log

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench_enrichment"
ROOT = Path(__file__).resolve().parent.parent
WORKERS = 2
PLATFORM_KEY = "sandbox-bench-key"


class Sandbox:
    """The provider sandboxes on a free loopback port in a thread, with their control API."""

    def __init__(self) -> None:
        import httpx

        from morket.providers.sandboxes import serve

        self.server = serve("127.0.0.1", 0)
        self.thread = threading.Thread(target=self.server.serve_forever, name="sandbox", daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        self.control = httpx.Client(timeout=30)

    def configure(self, provider: str, **values: Any) -> None:
        self.control.post(f"{self.base}/_sandbox/config", json={"provider": provider, **values}).raise_for_status()

    def reset(self) -> None:
        self.control.post(f"{self.base}/_sandbox/reset").raise_for_status()

    def log(self, provider: str) -> list[dict[str, Any]]:
        resp = self.control.get(f"{self.base}/_sandbox/log", params={"provider": provider})
        resp.raise_for_status()
        return resp.json()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.control.close()


def _app(url: str, redis_url: str, settings: dict[str, Any]):
    os.environ.setdefault("MORKET_ENV", "development")
    from morket import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "REDIS_URL": redis_url, "TESTING": True, "MORKET": settings})


def _workers(url: str, redis_url: str, env_settings: dict[str, str]) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "MORKET_ENV": "development",
        "MORKET_DATABASE_URL": url,
        "MORKET_REDIS_URL": redis_url,
        "MORKET_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **env_settings,
    }
    return [
        subprocess.Popen(  # our own worker entry point
            [sys.executable, "-m", "workers", "enrichment"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(WORKERS)
    ]


def _stop(procs: list[subprocess.Popen]) -> None:
    import signal

    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_for_workers(redis_url: str, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    """Wait until each of ``procs`` is registered and listening (its start-up is not timed)."""
    from redis import Redis
    from rq import Worker

    conn = Redis.from_url(redis_url)
    pids = {p.pid for p in procs}
    deadline = time.monotonic() + timeout
    while len(pids & {w.pid for w in Worker.all(connection=conn)}) < len(pids):
        if time.monotonic() > deadline:
            raise SystemExit("the enrichment workers did not start")
        time.sleep(0.2)
    conn.close()


def _cpu_seconds(procs: list[subprocess.Popen]) -> float:
    """CPU seconds (user + system) of the worker processes and their finished work horses.

    A forking worker reaps each job's horse, so the horse's time lands in the worker's children
    counters. Wall time on a shared, loaded machine includes waiting for a core; CPU time does not.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in procs:
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime are fields 14-17 of the line (11-14 after the command).
        total += sum(int(v) for v in fields[11:15])
    return total / ticks


def _proc_cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


class BackendCpu(threading.Thread):
    """Sample the CPU of the database backends that connect to the bench database during a run.

    Every 0.1 s it lists the backends started since ``start()`` (the workers' connections; the
    bench's own connection is older) and reads their CPU counters from /proc, keeping the last
    value seen per backend. What a backend spends after its last sample is missed, so the figure
    is a slight underestimate; it is only read where the database runs on this machine.
    """

    def __init__(self, url: str) -> None:
        super().__init__(name="backend-cpu", daemon=True)
        from sqlalchemy import create_engine

        self.engine = create_engine(url)
        self.halt = threading.Event()
        self.started = threading.Event()
        self.ticks: dict[int, int] = {}
        self.since = None

    def run(self) -> None:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            self.since = conn.execute(text("SELECT clock_timestamp()")).scalar()
            self.started.set()
            while not self.halt.is_set():
                pids = conn.execute(
                    text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND pid <> pg_backend_pid() AND backend_start >= :since"
                    ),
                    {"since": self.since},
                ).scalars()
                conn.rollback()
                for pid in pids:
                    found = _proc_cpu_ticks(pid)
                    if found is not None:
                        self.ticks[pid] = max(found, self.ticks.get(pid, 0))
                self.halt.wait(0.1)
        self.engine.dispose()

    def begin(self) -> None:
        """Start sampling once the start time is taken (backends older than it are not counted)."""
        self.start()
        self.started.wait(30)

    def finish(self) -> float:
        """Stop sampling; return the backends' CPU seconds."""
        self.halt.set()
        self.join(30)
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")


def _job_times(redis, run_id: int) -> dict[str, float]:
    """Sum what the run's jobs report (RQ keeps each job's return value): write, charge, wait seconds."""
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    totals = {"write_s": 0.0, "charge_s": 0.0, "wait_s": 0.0, "job_s": 0.0}
    for slot in range(WORKERS):
        # The run is marked finished inside the last job, a moment before RQ stores its result.
        stats = None
        deadline = time.monotonic() + 10
        while stats is None and time.monotonic() < deadline:
            with contextlib.suppress(NoSuchJobError):
                stats = Job.fetch(f"enrich-{run_id}-{slot}", connection=redis).return_value()
            if stats is None:
                time.sleep(0.05)
        if stats is None:
            log(f"job enrich-{run_id}-{slot} left no result; its times are not counted")
            continue
        for key in totals:
            totals[key] += float(stats.get(key, 0.0))
    return totals


def _phase(app, url: str, redis_url: str, rows: int, settings: dict[str, str], label: str) -> dict[str, Any]:
    """Run one email-finder column over ``rows`` fresh rows with two workers; return run figures."""
    import sqlalchemy as sa

    from morket.core.jobs import relay_committed
    from morket.credits.service import grant
    from morket.enrichment import service
    from morket.enrichment.config import EnrichmentConfig
    from morket.enrichment.models import EnrichmentAttempt, EnrichmentRun
    from morket.extensions import db
    from morket.tables import service as tables

    procs = _workers(url, redis_url, settings)
    try:
        _wait_for_workers(redis_url, procs)
        cpu_before = _cpu_seconds(procs)
        with app.app_context():
            redis = app.extensions["morket_redis"]
            for key in redis.scan_iter("morket:throttle:*hunter*"):
                redis.delete(key)
            workspace, owner = bench_workspace("bench-enrichment", "Bench enrichment")
            grant(workspace.id, rows * 4, idempotency_key=f"bench:{uuid.uuid4().hex}")
            salt = uuid.uuid4().hex[:8]
            table = tables.create_table(
                workspace,
                owner,
                f"bench {label} {salt}",
                columns=[
                    {"name": "First name", "type": "text"},
                    {"name": "Last name", "type": "text"},
                    {"name": "Domain", "type": "domain"},
                    {"name": "Title", "type": "text"},
                ],
            )
            ids = {c.name: c.id for c in table.live_columns}
            for start in range(0, rows, 10_000):
                batch = [
                    {"First name": f"Person{i}", "Last name": f"Bench{i % 997}", "Domain": f"co{i}-{salt}.example.com"}
                    for i in range(start, min(rows, start + 10_000))
                ]
                tables.insert_rows(workspace, owner, table, batch)
            config = EnrichmentConfig.model_validate(
                {
                    "steps": [{"operation": "hunter.email_finder"}],
                    "target": "email",
                    "inputs": {"first_name": ids["First name"], "last_name": ids["Last name"], "domain": ids["Domain"]},
                    "outputs": [{"field": "position", "column_id": ids["Title"]}],
                }
            )
            column = tables.add_column(workspace, owner, table, "Email", "enrichment", config=config.model_dump())
            db.session.commit()
            backends = BackendCpu(url)
            backends.begin()
            bench_cpu_before = time.process_time()
            run = service.start_run(workspace, owner, table, column, scope="all", confirm=True)
            db.session.commit()
            relay_committed()
            run_id = run.id
            log(f"{label}: run {run_id} over {rows} rows started")
            deadline = time.monotonic() + max(600, rows / 10)
            while True:
                db.session.rollback()
                run = db.session.get(EnrichmentRun, run_id)
                if run.finished:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{label}: the run did not finish: {service.run_progress(run)}")
                time.sleep(0.05)
            if run.status != "completed" or run.done != rows:
                raise SystemExit(f"{label}: the run ended {run.status}: {service.run_progress(run)}")
            times = _job_times(redis, run_id)
            time.sleep(0.5)  # the workers reap their last horses
            cpu_s = _cpu_seconds(procs) - cpu_before
            # This process: the provider sandbox's threads (and the light polling of the run).
            sandbox_cpu_s = time.process_time() - bench_cpu_before
            db_cpu_s = backends.finish()
            latency = db.session.scalar(
                sa.select(sa.func.avg(EnrichmentAttempt.latency_ms)).where(EnrichmentAttempt.run_id == run_id)
            )
            return {
                "wall_s": (run.finished_at - run.created_at).total_seconds(),
                "succeeded": run.succeeded,
                "credits_used": run.credits_used,
                "mean_call_ms": float(latency or 0),
                "cpu_s": cpu_s,
                "sandbox_cpu_s": sandbox_cpu_s,
                "db_cpu_s": db_cpu_s,
                **times,
            }
    finally:
        _stop(procs)


def bare_calls(base_url: str, start: int, count: int, salt: str, start_at: float) -> float:
    """The provider calls alone: ``count`` email-finder calls through the Hunter adapter with the
    engine's HTTP client settings and concurrency, no queue, no database. Returns the seconds from
    the first call to the last answer (the loop starts at ``start_at``, a ``time.time()``)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from morket.providers.base import CallContext
    from morket.providers.registry import get_operation, provider_for
    from morket.runs.limits import CALL_TIMEOUT_SECONDS

    concurrency = 8  # ENRICHMENT_CONCURRENCY's default, as the workers run it
    op = get_operation("hunter.email_finder")
    provider = provider_for(op.key)
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    with httpx.Client(timeout=CALL_TIMEOUT_SECONDS, limits=limits) as client, ThreadPoolExecutor(concurrency) as pool:
        ctx = CallContext(client=client, api_key=PLATFORM_KEY, base_url=base_url, timeout=CALL_TIMEOUT_SECONDS)

        def one(i: int) -> str:
            inputs = {"first_name": f"Person{i}", "last_name": f"Bench{i % 997}", "domain": f"co{i}-{salt}.example.com"}
            return provider.call(op, inputs, ctx).outcome

        time.sleep(max(0.0, start_at - time.time()))
        began = time.perf_counter()
        outcomes = list(pool.map(one, range(start, start + count)))
        elapsed = time.perf_counter() - began
    if any(o not in ("hit", "not_found") for o in outcomes):
        raise SystemExit(f"bare calls failed: {sorted(set(outcomes))}")
    return elapsed


def run_bare_calls(hunter_url: str, rows: int) -> float:
    """Two processes (as many as workers) share the rows' calls, started together; the slower one's
    time is the baseline's wall time."""
    salt = uuid.uuid4().hex[:8]
    start_at = time.time() + 3.0  # both processes have imported by then
    share = -(-rows // WORKERS)
    procs = []
    for k in range(WORKERS):
        count = max(0, min(share, rows - k * share))
        spec = json.dumps({"url": hunter_url, "start": k * share, "count": count, "salt": salt, "at": start_at})
        procs.append(
            subprocess.Popen(  # this module
                [sys.executable, "-m", "bench.enrichment", "--bare-calls", spec],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    times = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise SystemExit("the bare call loop failed")
        times.append(json.loads(out.strip().splitlines()[-1])["elapsed_s"])
    return max(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--allowed-rate", type=float, default=50.0, help="the sandbox's requests per second")
    parser.add_argument("--bare-calls", help=argparse.SUPPRESS)
    if argv is None and "--bare-calls" in sys.argv:
        spec = json.loads(sys.argv[sys.argv.index("--bare-calls") + 1])
        elapsed = bare_calls(spec["url"], spec["start"], spec["count"], spec["salt"], spec["at"])
        print(json.dumps({"elapsed_s": elapsed}), flush=True)
        return {"elapsed_s": elapsed}
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.allowed_rate < 1:
        parser.error("--allowed-rate must be at least 1")
    url = os.environ.get("MORKET_BENCH_DATABASE_URL", DEFAULT_URL)
    sa_url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    redis_url = os.environ.get("MORKET_REDIS_URL") or "redis://127.0.0.1:6379/0"
    ensure_database(sa_url)
    sandbox = Sandbox()
    hunter_url = f"{sandbox.base}/hunter"
    common = {"MORKET_HUNTER_URL": hunter_url, "MORKET_HUNTER_API_KEY": PLATFORM_KEY}
    from flask_migrate import upgrade

    app = _app(sa_url, redis_url, {"HUNTER_URL": hunter_url, "HUNTER_API_KEY": PLATFORM_KEY})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"), revision="heads")
    figures: dict[str, Any] = {"allowed_rate": args.allowed_rate, "workers": WORKERS}
    ratios: dict[str, Any] = {}
    try:
        # Rate phase: the sandbox's limit is the provider's; Morket is told the same rate.
        sandbox.reset()
        sandbox.configure("hunter", rate=args.allowed_rate, burst=args.allowed_rate, latency_ms=0)
        rate = f"{args.allowed_rate:g}"
        _phase(app, sa_url, redis_url, args.rows, {**common, "MORKET_PROVIDER_RATES": f"hunter={rate}"}, "rate")
        entries = sandbox.log("hunter")
        answered = sorted(e["at"] for e in entries if e["status"] == 200)
        throttled = sorted(e["at"] for e in entries if e["status"] == 429)
        span = answered[-1] - answered[0] if len(answered) > 1 else 0.0
        achieved = (len(answered) - 1) / span if span > 0 else 0.0
        steady_from = answered[0] + 1.0 if answered else 0.0
        figures.update(
            achieved_rate=round(achieved, 2),
            requests=len(entries),
            http_429=len(throttled),
            http_429_steady=len([t for t in throttled if t >= steady_from]),
            rate_phase_s=round(span, 2),
        )
        ratios["rate_over_allowed"] = round(achieved / args.allowed_rate, 3)
        log(f"rate: {achieved:.1f} req/s of {args.allowed_rate:g} allowed, {len(throttled)} answers 429")

        # Overhead phase: a provider that answers at once and never limits.
        sandbox.reset()
        sandbox.configure("hunter", rate=1_000_000, burst=1_000_000, latency_ms=0)
        measured = _phase(
            app, sa_url, redis_url, args.rows, {**common, "MORKET_PROVIDER_RATES": "hunter=1000000"}, "overhead"
        )
        sandbox.reset()  # a fresh log; the same answers at once, without a limit
        sandbox.configure("hunter", rate=1_000_000, burst=1_000_000, latency_ms=0)
        bare_s = run_bare_calls(hunter_url, args.rows)
        log(f"bare calls: {bare_s:.2f} s for {args.rows} calls")
        ratios["run_over_bare_calls"] = round(measured["wall_s"] / bare_s, 3) if bare_s else None
        figures.update(
            # Summed over both workers: the database work per row, and the credit charges' share of it.
            write_ms_per_row=round(measured["write_s"] * 1000 / args.rows, 3),
            charge_ms_per_row=round(measured["charge_s"] * 1000 / args.rows, 3),
            charge_share_of_write=round(measured["charge_s"] / measured["write_s"], 3) if measured["write_s"] else None,
            # Time a job waited for its batch's provider calls after its write, and the jobs' lives.
            wait_ms_per_row=round(measured["wait_s"] * 1000 / args.rows, 3),
            job_s_per_worker=round(measured["job_s"] / WORKERS, 2),
            # The run's whole time per row, provider calls included.
            run_ms_per_row=round(measured["wall_s"] * 1000 / args.rows, 3),
            # The same calls alone (two processes, the engine's concurrency), in this run.
            bare_calls_ms_per_row=round(bare_s * 1000 / args.rows, 3),
            # Queueing and bookkeeping: what the run takes beyond its provider calls.
            overhead_ms_per_row=round((measured["wall_s"] - bare_s) * 1000 / args.rows, 3),
            # CPU the two worker processes spent per row (Python side; the database's is not counted).
            worker_cpu_ms_per_row=round(measured["cpu_s"] * 1000 / args.rows, 3),
            sandbox_cpu_ms_per_row=round(measured["sandbox_cpu_s"] * 1000 / args.rows, 3),
            db_cpu_ms_per_row=round(measured["db_cpu_s"] * 1000 / args.rows, 3),
            overhead_rows_per_s=round(args.rows / measured["wall_s"], 1),
            overhead_mean_call_ms=round(measured["mean_call_ms"], 2),
            overhead_wall_s=round(measured["wall_s"], 2),
        )
        log(
            f"overhead: {figures['overhead_ms_per_row']} ms per row beyond the calls"
            f" (run {figures['run_ms_per_row']}, bare calls {figures['bare_calls_ms_per_row']} ms per row)"
        )
    finally:
        sandbox.stop()
    result = {"bench": "enrichment", "rows": args.rows, "figures": figures, "ratios": ratios}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
