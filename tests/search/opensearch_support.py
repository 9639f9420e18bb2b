"""Test support for the OpenSearch engine: the OpenSearch API specification as validators, and a
local HTTP server answering with recorded OpenSearch JSON (so opensearch-py's real transport,
serialisation, retries and error mapping run).

The specification is read at test time from a checkout of opensearch-project/opensearch-api-specification
(``spec/`` and ``tests/``) named by ``MORKET_OPENSEARCH_SPEC``, else the copy under
``../shared/contracts/opensearch/`` beside the project. Tests that need it skip with a message when
neither is there.
"""

from __future__ import annotations

import json
import os
import re
import threading
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tests.conftest import SHARED

_BASE = "https://opensearch-spec.invalid/"


def spec_root() -> Path | None:
    named = os.environ.get("MORKET_OPENSEARCH_SPEC", "").strip()
    for root in ([Path(named)] if named else []) + [SHARED / "contracts" / "opensearch"]:
        if (root / "spec" / "namespaces" / "_core.yaml").is_file():
            return root
    return None


def need_spec() -> Path:
    root = spec_root()
    if root is None:
        pytest.skip(
            "OpenSearch API specification not found in ../shared/contracts/opensearch/: set "
            "MORKET_OPENSEARCH_SPEC to a checkout of opensearch-project/opensearch-api-specification"
        )
    return root


class Spec:
    """Validators for request and response bodies named by their place in the specification."""

    def __init__(self, root: Path) -> None:
        import jsonschema_rs

        self.root = root
        self.docs: dict[str, Any] = {}
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for path in sorted((root / "spec").rglob("*.yaml")):
            rel = path.relative_to(root / "spec").as_posix()
            doc = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
            if isinstance(doc, dict):
                doc = {**doc, "$id": _BASE + rel, "$schema": "https://json-schema.org/draft/2020-12/schema"}
                self.docs[rel] = doc
        self._jsonschema = jsonschema_rs
        self.registry = jsonschema_rs.Registry(
            [(_BASE + rel, doc) for rel, doc in self.docs.items()], draft=jsonschema_rs.Draft202012
        )

    def node(self, rel: str, *pointer: str) -> Any:
        node = self.docs[rel]
        for key in pointer:
            node = node[key]
        return node

    def validator(self, rel: str, *pointer: str):
        ref = _BASE + rel + "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in pointer)
        return self._jsonschema.validator_for({"$ref": ref}, registry=self.registry)

    def request(self, namespace: str, operation: str, media: str = "application/json"):
        return self.validator(
            f"namespaces/{namespace}.yaml", "components", "requestBodies", operation, "content", media, "schema"
        )

    def response(self, namespace: str, key: str):
        return self.validator(
            f"namespaces/{namespace}.yaml", "components", "responses", key, "content", "application/json", "schema"
        )

    def query_parameters(self, namespace: str, operation: str) -> set[str]:
        params = self.node(f"namespaces/{namespace}.yaml", "components", "parameters")
        prefix = f"{operation}::query."
        return {k.removeprefix(prefix) for k in params if k.startswith(prefix)}


def errors(validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message[:300]}" for e in validator.iter_errors(instance)]


@cache
def load_spec(root: str) -> Spec:
    return Spec(Path(root))


# --- the replay server --------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[Any]:
        return [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]


@dataclass
class Answer:
    method: str
    path: re.Pattern[str]
    status: int
    payload: Any
    times: int | None = None


@dataclass
class ReplayServer:
    """Answers like OpenSearch with recorded JSON: the first matching answer wins (``times`` caps one)."""

    answers: list[Answer] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def start(self) -> ReplayServer:
        replay = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                parts = urlsplit(self.path)
                replay.seen.append(Seen(self.command, parts.path, parse_qs(parts.query), body))
                status, payload = replay.pick(self.command, parts.path)
                data = b"" if self.command == "HEAD" else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815 - http.server's names

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, method: str, path: str, status: int, payload: Any, times: int | None = None) -> None:
        self.answers.append(Answer(method, re.compile(path), status, payload, times))

    def pick(self, method: str, path: str) -> tuple[int, Any]:
        for answer in self.answers:
            if answer.method == method and answer.path.fullmatch(path) and answer.times != 0:
                if answer.times is not None:
                    answer.times -= 1
                return answer.status, answer.payload
        return 404, not_found(path)

    def requests(self, method: str, path: str) -> list[Seen]:
        return [s for s in self.seen if s.method == method and re.fullmatch(path, s.path)]


def not_found(what: str) -> dict[str, Any]:
    """OpenSearch's answer for a missing index (recorded from a 2.x cluster)."""
    reason = f"no such index [{what.strip('/').split('/')[0]}]"
    cause = {"type": "index_not_found_exception", "reason": reason, "index": what.strip("/").split("/")[0]}
    return {"error": {"root_cause": [cause], **cause}, "status": 404}


def search_answer(hits: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``_search`` response as OpenSearch 2.x writes it."""
    return {
        "took": 3,
        "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {
            "max_score": max((h["_score"] for h in hits), default=None),
            "hits": hits,
        },
    }


def search_hit(index: str, source: dict[str, Any], score: float = 1.0) -> dict[str, Any]:
    return {
        "_index": index,
        "_id": f"{source['table_id']}:{source['row_id']}:{source['column_id']}",
        "_score": score,
        "_routing": str(source["workspace_id"]),
        "_source": source,
    }
