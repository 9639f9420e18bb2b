"""AI column runs for ``python -m bench.ai --rows N``: the rate reached, and Morket's cost per row.

Both phases run an AI column (one of six industries, the sandbox LLM as the platform default) over N
fresh rows whose prompts are all new (a salt in each row), so no answer comes from the cache. The
run is worked in this process by one job slot, as a worker's job would (``executor.work``), on
the bench database and ``MORKET_REDIS_URL``.

- rate phase: the sandbox allows ``allowed`` requests per second (burst the same) and
  Morket is configured with the same rate (``AI_REQUESTS_PER_MINUTE``; the token allowance is set
  so that it does not bind: the sandbox limits requests only). ``rate_over_allowed`` is the
  rate the sandbox saw (its own log: answered chat completions, first to last) over ``allowed``
  (goal >= 0.95); ``http_429`` counts the 429s it answered.
- overhead phase: no limit and no latency at the sandbox. ``overhead_ms_per_row`` is the run's wall
  time (started to finished) minus the bare calls' wall time, over N (goal <= 2): the bare calls are
  the same N prompts sent by the official ``openai`` client (``llm.complete``) from as many threads
  as the run uses, with no queue, no database and no Redis.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.common import log

INDUSTRIES = ("Software", "Retail", "Finance", "Healthcare", "Energy", "Logistics")


def _table(workspace, owner, rows: int, salt: str):
    from morket.ai import columns
    from morket.tables import service as tables

    specs = [{"name": "Description", "type": "text"}]
    table = tables.create_table(workspace, owner, f"AI bench {salt}", columns=specs)
    data = [{"Description": f"A {INDUSTRIES[i % 6].lower()} company, bench {salt} row {i}"} for i in range(rows)]
    tables.insert_rows(workspace, owner, table, data)
    setup = {"name": "Industry", "prompt": "Which industry? {{Description}}", "output_type": "choice",
             "options": list(INDUSTRIES), "max_tokens": 32}  # fmt: skip
    column = columns.create_ai_column(workspace, owner, table, columns.parse_setup(setup))
    return table, column, data


def _run(workspace, owner, table, column) -> float:
    """Start a run and work it to the end in this process; its wall time in seconds."""
    from morket.ai import column_runs, executor
    from morket.extensions import db
    from morket.runs.models import Run

    started = time.perf_counter()
    run = column_runs.start_run(workspace, owner, table, column)
    db.session.commit()
    run_id = run.id
    log(f"  run started in {time.perf_counter() - started:.2f} s")
    while True:
        began = time.perf_counter()
        stats = executor.work(run_id, 0, budget=30)
        log(f"  work: {time.perf_counter() - began:.2f} s, {stats}")
        db.session.expire_all()
        run = db.session.get(Run, run_id)
        if run.finished:
            return time.perf_counter() - started


def _sandbox_rate(base: str) -> tuple[float, int, int]:
    entries = httpx.get(f"{base}/_sandbox/log", params={"provider": "openai"}, timeout=30).json()
    answered = sorted(e["at"] for e in entries if e["operation"] == "chat_completions" and e["status"] == 200)
    limited = sum(1 for e in entries if e["status"] == 429)
    if len(answered) < 2:
        return 0.0, len(answered), limited
    return (len(answered) - 1) / (answered[-1] - answered[0]), len(answered), limited


def _bare(base: str, key: str, data: list[dict[str, str]], threads: int) -> float:
    from morket.ai import executor, llm, prompt
    from morket.ai.columns import AiConfig

    endpoint = llm.Endpoint("openai", base + "/openai/v1", key, "sandbox-small", True)
    config = AiConfig(prompt="Which industry? {{Description}}", inputs={"Description": 1}, output_type="choice",
                      options=list(INDUSTRIES), max_tokens=32)  # fmt: skip
    system, schema = prompt.system_prompt(""), config.schema()
    texts = [executor.row_prompt(config, {"Description": row["Description"] + " bare"}) for row in data]

    def one(text: str) -> Any:
        return llm.complete(endpoint, system=system, prompt=text, schema=schema, max_tokens=32).value

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, texts[: threads * 2]))  # warm the client and its connections
        started = time.perf_counter()
        list(pool.map(one, texts))
        return time.perf_counter() - started


def measure(app, base: str, key: str, rows: int, allowed: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """(figures, ratios) of the two phases."""
    from bench.common import bench_workspace
    from morket.ai import executor
    from morket.credits.service import grant
    from morket.extensions import db
    from morket.tables import service as tables
    from morket.workspaces.models import Workspace

    settings = app.config["MORKET"]
    threads = int(settings.get("ENRICHMENT_CONCURRENCY") or 8)
    workspace, owner = bench_workspace("bench-ai", "AI bench")
    workspace = db.session.get(Workspace, workspace.id)
    grant(workspace.id, 10_000_000, idempotency_key=f"bench-ai-runs-{time.time_ns()}")
    db.session.commit()
    assert executor.EXECUTOR is not None

    # Rate phase.
    httpx.post(f"{base}/_sandbox/reset").raise_for_status()
    httpx.post(
        f"{base}/_sandbox/config", json={"provider": "openai", "rate": allowed, "burst": allowed}
    ).raise_for_status()
    settings["AI_REQUESTS_PER_MINUTE"] = allowed * 60
    # The token bucket counts each call as whole 500-token chunks (executor.TOKEN_CHUNK): at the default
    # 400,000 tokens a minute that alone caps short calls near 13/s. The sandbox limits requests only,
    # so the bench gives the endpoint a token allowance that does not bind.
    settings["AI_TOKENS_PER_MINUTE"] = 1_000_000_000
    table, column, _ = _table(workspace, owner, rows, uuid.uuid4().hex[:8])
    db.session.commit()
    rate_wall = _run(workspace, owner, table, column)
    achieved, answered, limited = _sandbox_rate(base)
    log(f"rate phase: {answered} answers in {rate_wall:.1f} s, {achieved:.2f}/s of {allowed}/s allowed, {limited} 429s")
    tables.delete_table(workspace, owner, table)
    db.session.commit()

    # Overhead phase.
    httpx.post(f"{base}/_sandbox/reset").raise_for_status()
    httpx.post(f"{base}/_sandbox/config", json={"provider": "openai", "rate": 1e6, "burst": 1e6}).raise_for_status()
    settings["AI_REQUESTS_PER_MINUTE"] = 10_000_000
    table, column, data = _table(workspace, owner, rows, uuid.uuid4().hex[:8])
    db.session.commit()
    wall = _run(workspace, owner, table, column)
    bare = _bare(base, key, data, threads)
    log(f"overhead phase: run {wall:.2f} s, bare calls {bare:.2f} s for {rows} rows ({threads} threads)")
    tables.delete_table(workspace, owner, table)
    db.session.commit()
    figures = {
        "rows": rows,
        "allowed_rate": allowed,
        "achieved_rate": round(achieved, 3),
        "http_429": limited,
        "run_wall_s": round(wall, 3),
        "bare_wall_s": round(bare, 3),
        "overhead_ms_per_row": round((wall - bare) * 1000 / rows, 3),
    }
    return figures, {"rate_over_allowed": round(achieved / allowed, 3)}
