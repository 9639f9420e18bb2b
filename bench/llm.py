"""``python -m bench.llm``: what the one call path (``morket.ai.llm.complete``) costs per call.

Against the sandbox LLM on a loopback port (no model: the sandbox's own work is the same for both
sides), it times ``calls`` structured-output calls made by ``complete`` (the official clients,
cached per endpoint, JSON parsed, errors mapped) from ``concurrency`` threads, as the AI column's
pool makes them, and the same requests posted by a bare ``httpx.Client`` per thread with the
answer's JSON parsed: the raw baseline measured in the same run. Both APIs (OpenAI-compatible and
Anthropic). Ends with one JSON line: figures and ratios (complete over bare; 1.0 means no cost).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from bench.common import log

KEY = "sandbox-bench-llm"
SCHEMA = {
    "type": "object",
    "properties": {
        "industry": {"type": "string", "enum": ["SaaS", "Retail", "Fintech", "Health"]},
        "employees": {"type": "integer"},
        "summary": {"type": "string"},
    },
    "required": ["industry", "employees", "summary"],
    "additionalProperties": False,
}
SYSTEM = "Classify the company in the data. Answer with the schema."


def _prompt(i: int) -> str:
    return f"Company #{i}\n<data>{100 + i} staff at Acme {i}, selling software to retail chains.</data>"


def _wire(kind: str, i: int) -> tuple[str, dict[str, str], dict[str, Any]]:
    """Path, headers and body of the request ``complete`` sends for call ``i`` (what the bare side posts)."""
    if kind == "openai":
        response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
        body = {
            "model": "sandbox-small",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": _prompt(i)}],
            "temperature": 0.0,
            "max_completion_tokens": 256,
            "response_format": response_format,
        }  # fmt: skip
        return "/openai/v1/chat/completions", {"Authorization": f"Bearer {KEY}"}, body
    body = {
        "model": "sandbox-small",
        "max_tokens": 256,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": _prompt(i)}],
        "tools": [{"name": "answer", "description": "Give the answer.", "input_schema": SCHEMA}],
        "tool_choice": {"type": "tool", "name": "answer"},
    }
    return "/anthropic/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"}, body


def _bare(base: str, kind: str, calls: int, concurrency: int) -> float:
    local = threading.local()

    def one(i: int) -> Any:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base, timeout=30)
        path, headers, body = _wire(kind, i)
        resp = client.post(path, headers=headers, json=body)
        resp.raise_for_status()
        data = resp.json()
        if kind == "openai":
            return json.loads(data["choices"][0]["message"]["content"])
        return data["content"][0]["input"]

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        values = list(pool.map(one, range(calls)))
    elapsed = time.perf_counter() - started
    assert all(v["employees"] == 100 + i for i, v in enumerate(values)), "bare answers do not match"
    return elapsed


def _complete(base: str, kind: str, calls: int, concurrency: int) -> float:
    from morket.ai import llm

    url = base + ("/openai/v1" if kind == "openai" else "/anthropic")
    endpoint = llm.Endpoint(kind=kind, base_url=url, api_key=KEY, model="sandbox-small", platform=True)

    def one(i: int) -> Any:
        return llm.complete(endpoint, system=SYSTEM, prompt=_prompt(i), schema=SCHEMA, max_tokens=256).value

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        values = list(pool.map(one, range(calls)))
    elapsed = time.perf_counter() - started
    assert all(v["employees"] == 100 + i for i, v in enumerate(values)), "complete() answers do not match"
    return elapsed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.llm", description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    from morket.devservices import free_port, port_answers

    # The sandbox in a process of its own, so that it does not share this one's interpreter lock.
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "morket.providers.sandboxes", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,  # idle kept-alive connections timing out are not news
    )
    deadline = time.monotonic() + 20
    while not port_answers("127.0.0.1", port):
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the sandbox did not start")
        time.sleep(0.1)
    base = f"http://127.0.0.1:{port}"
    for provider in ("openai", "anthropic"):  # no rate limit: the bench measures the call path
        httpx.post(f"{base}/_sandbox/config", json={"provider": provider, "rate": 1e6, "burst": 1e6}).raise_for_status()
    figures: dict[str, Any] = {"calls": args.calls, "concurrency": args.concurrency}
    ratios: dict[str, Any] = {}
    try:
        for kind in ("openai", "anthropic"):
            _complete(base, kind, 50, args.concurrency)  # warm: clients built, connections open
            _bare(base, kind, 50, args.concurrency)
            mine: list[float] = []
            bare: list[float] = []
            for run in range(args.repeat):
                # Alternate which side goes first, so that neither always meets the warmer machine.
                if run % 2:
                    mine.append(_complete(base, kind, args.calls, args.concurrency))
                    bare.append(_bare(base, kind, args.calls, args.concurrency))
                else:
                    bare.append(_bare(base, kind, args.calls, args.concurrency))
                    mine.append(_complete(base, kind, args.calls, args.concurrency))
                log(f"{kind} run {run + 1}: complete {mine[-1]:.2f} s, bare {bare[-1]:.2f} s for {args.calls} calls")
            mine_rate = args.calls / statistics.median(mine)
            bare_rate = args.calls / statistics.median(bare)
            figures[f"{kind}_complete_per_s"] = round(mine_rate, 1)
            figures[f"{kind}_bare_per_s"] = round(bare_rate, 1)
            figures[f"{kind}_complete_ms_each"] = round(1000 * args.concurrency / mine_rate, 3)
            figures[f"{kind}_bare_ms_each"] = round(1000 * args.concurrency / bare_rate, 3)
            ratios[f"{kind}_complete_over_bare"] = round(mine_rate / bare_rate, 3)
    finally:
        server.terminate()
        server.wait(10)
    result = {"figures": figures, "ratios": ratios}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
