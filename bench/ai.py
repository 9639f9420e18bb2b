"""``python -m bench.ai``: what natural language to filters costs beyond the model's own latency.

Against the sandbox LLM in a process of its own (no model: its rule-based answer is the same work
for both sides), it times ``nl_filter.translate`` over a table of the usual company columns for a
set of phrasings: resolving the platform endpoint, building the schema and the prompt, the call
through ``llm.complete``, validating the answer against the table's whitelist and charging its
tokens (one ledger entry; the session is committed after each request, as the page's is). Each call's
``model_ms`` (the time inside ``complete``) is subtracted from its total, so
``figures.nl_filter_p95_ms`` is Morket's own work per request (goal: 50 ms or less), the commit of
the charge included (``commit_p95_ms`` and ``own_before_commit_p95_ms`` split it). The raw
baseline, measured in the same run: the same request posted by a bare ``httpx.Client`` with the
answer's JSON parsed (``bare_p95_ms``). With ``--rows N`` (default 300) it then runs an AI column
twice over N rows (``bench.ai_runs``): ``ratios.rate_over_allowed`` at the sandbox's allowed rate
and ``figures.overhead_ms_per_row`` beyond the bare client calls. Ends with one JSON line of
figures and ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from bench.common import bench_workspace, log, migrated_app

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/morket_bench_ai"
KEY = "sandbox-bench-ai"
PHRASES = [
    "German companies with more than 50 employees and no email yet",
    "companies in France",
    "revenue between 1m and 5m",
    "founded after 2015",
    "industry is software",
    "tags contains AI",
    "customers without a description",
    "company starts with Acme",
    "job title contains CEO and no email yet",
    "country is Germany or country is France",
]
COLUMNS = [
    {"name": "Company", "type": "text"}, {"name": "Domain", "type": "domain"}, {"name": "Country", "type": "text"},
    {"name": "City", "type": "text"}, {"name": "Employees", "type": "number"}, {"name": "Revenue", "type": "currency"},
    {"name": "Founded", "type": "date"}, {"name": "Email", "type": "email"},
    {"name": "Industry", "type": "single_select", "config": {"options": ["Software", "Retail", "Finance"]}},
    {"name": "Tags", "type": "multi_select", "config": {"options": ["SaaS", "B2B", "AI"]}},
    {"name": "Customer", "type": "checkbox"}, {"name": "Description", "type": "long_text"},
    {"name": "Job title", "type": "text"},
]  # fmt: skip


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _sandbox() -> tuple[subprocess.Popen, str]:
    from morket.devservices import free_port, port_answers

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "morket.providers.sandboxes", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not port_answers("127.0.0.1", port):
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the sandbox did not start")
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}"
    httpx.post(f"{base}/_sandbox/config", json={"provider": "openai", "rate": 1e6, "burst": 1e6}).raise_for_status()
    return server, base


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.ai", description=__doc__)
    parser.add_argument("--rounds", type=int, default=30, help="times each phrase is asked")
    parser.add_argument("--rows", type=int, default=300, help="rows of each AI column run (0: no runs)")
    parser.add_argument(
        "--allowed-rate", type=float, default=20.0, help="requests/s the sandbox allows in the rate phase"
    )
    args = parser.parse_args(argv)

    server, base = _sandbox()
    try:
        app, _ = migrated_app(DEFAULT_URL)
        settings = app.config["MORKET"]
        settings.update({"AI_KIND": "openai", "AI_BASE_URL": base + "/openai/v1", "AI_API_KEY": KEY,
                         "AI_MODEL": "sandbox-small", "AI_MODELS": []})  # fmt: skip
        with app.app_context():
            from morket.ai import llm, nl_filter
            from morket.credits.service import grant
            from morket.extensions import db
            from morket.tables import service as tables

            workspace, owner = bench_workspace("bench-ai", "AI bench")
            grant(workspace.id, 1_000_000, idempotency_key=f"bench-ai-{time.time_ns()}")  # suggestions are charged
            table = tables.create_table(workspace, owner, f"NL filters {int(time.time())}", columns=COLUMNS)
            db.session.commit()
            columns = nl_filter.filterable(table)
            schema = nl_filter.filter_schema(columns)
            wire = {"type": "json_schema", "json_schema": {"name": llm.SCHEMA_NAME, "schema": schema, "strict": True}}
            bare_client = httpx.Client(base_url=base, timeout=30)

            def bare(phrase: str) -> float:
                body = {
                    "model": "sandbox-small",
                    "messages": [{"role": "system", "content": nl_filter.SYSTEM},
                                 {"role": "user", "content": nl_filter.build_prompt(phrase, columns)}],
                    "temperature": 0.0, "max_completion_tokens": nl_filter.MAX_TOKENS, "response_format": wire,
                }  # fmt: skip
                started = time.perf_counter()
                resp = bare_client.post(
                    "/openai/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {KEY}"}
                )
                resp.raise_for_status()
                json.loads(resp.json()["choices"][0]["message"]["content"])
                return (time.perf_counter() - started) * 1000

            for phrase in PHRASES:  # warm: the client built, the connection open, every phrase valid
                nl_filter.translate(workspace, table, phrase)
                db.session.commit()
                bare(phrase)
            own, total, model, raw, commit = [], [], [], [], []
            for _ in range(args.rounds):
                for phrase in PHRASES:
                    started = time.perf_counter()
                    result = nl_filter.translate(workspace, table, phrase)
                    committing = time.perf_counter()
                    db.session.commit()
                    commit.append((time.perf_counter() - committing) * 1000)
                    result.total_ms = (time.perf_counter() - started) * 1000
                    own.append(result.total_ms - result.model_ms)
                    total.append(result.total_ms)
                    model.append(result.model_ms)
                    raw.append(bare(phrase))
            log(f"{len(own)} requests: own p95 {p95(own):.2f} ms, total {p95(total):.2f} ms, bare {p95(raw):.2f} ms")
            tables.delete_table(workspace, owner, table)
            db.session.commit()
            run_figures, run_ratios = {}, {}
            if args.rows > 0:
                from bench.ai_runs import measure

                run_figures, run_ratios = measure(app, base, KEY, args.rows, args.allowed_rate)
    finally:
        server.terminate()
        server.wait(10)
    figures = {
        "requests": len(own),
        "columns": len(columns),
        "nl_filter_p95_ms": round(p95(own), 3),
        "nl_filter_median_ms": round(statistics.median(own), 3),
        "nl_filter_total_p95_ms": round(p95(total), 3),
        "commit_p95_ms": round(p95(commit), 3),
        "commit_median_ms": round(statistics.median(commit), 3),
        "own_before_commit_p95_ms": round(p95([o - c for o, c in zip(own, commit, strict=True)]), 3),
        "model_call_p95_ms": round(p95(model), 3),
        "bare_p95_ms": round(p95(raw), 3),
        **run_figures,
    }
    ratios = {
        "total_over_bare_p95": round(p95(total) / p95(raw), 3),
        "complete_over_bare_p95": round(p95(model) / p95(raw), 3),
        **run_ratios,
    }
    result = {"figures": figures, "ratios": ratios}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
