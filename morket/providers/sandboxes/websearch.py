"""A web search API as the Brave Search API documents it, over an index of pages the caller sets.

Served under ``/websearch``: ``GET /websearch/res/v1/web/search?q=<query>&count=<n>`` with the key
in the ``X-Subscription-Token`` header (valid keys start ``sandbox-`` or ``sk-test-``, else 401).
The answer has Brave's shape::

    {"type": "search", "query": {"original": "..."},
     "web": {"type": "search", "results": [{"title", "url", "description"}, ...]}}

Errors: ``{"type": "ErrorResponse", "error": {"status", "code", "detail"}}``; 429 with
``Retry-After`` over the sandbox's rate limit or quota; latency and failures from the shared knobs
(``POST /_sandbox/config`` with ``provider: websearch``).

No web: the results come from an index of documents, ``POST /_sandbox/websearch/index`` with
``{"documents": [{"url", "title", "description"}]}`` (replaces it; ``GET`` reads it). A query's
words (letters and digits, three characters or more, lowercased) are matched against each
document's title, description and URL; documents sharing at least one word come back, most
shared words first, then in index order; ``count`` (default 5, at most 20) cuts the list. An empty
``q`` is a 422. The pages the URLs name are served elsewhere (tests use local sites).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from werkzeug.wrappers import Request, Response

from morket.providers.sandboxes.server import Call, ProviderSandbox, json_response

DEFAULT_COUNT = 5
MAX_COUNT = 20
MAX_QUERY = 400
_WORD = re.compile(r"[a-z0-9]{3,}")


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


class WebSearchSandbox(ProviderSandbox):
    name = "websearch"
    routes = {("GET", "/res/v1/web/search"): "web_search"}

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.documents: list[dict[str, str]] = []

    def key_of(self, request: Request) -> str | None:
        return request.headers.get("X-Subscription-Token")

    def error(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
        codes = {401: "SUBSCRIPTION_TOKEN_INVALID", 429: "RATE_LIMITED", 422: "VALIDATION"}
        body = {
            "type": "ErrorResponse",
            "error": {"status": status, "code": codes.get(status, code), "detail": message},
        }
        return json_response(body, status, headers)

    def admin(self, action: str, request: Request) -> Response | None:
        if action != "index":
            return None
        if request.method == "GET":
            with self.lock:
                return json_response({"documents": list(self.documents)})
        body = request.get_json(silent=True)
        documents = body.get("documents") if isinstance(body, dict) else None
        if not isinstance(documents, list) or not all(
            isinstance(d, dict) and isinstance(d.get("url"), str) for d in documents
        ):
            return json_response({"error": 'send {"documents": [{"url", "title", "description"}]}'}, 400)
        cleaned = [
            {"url": d["url"], "title": str(d.get("title") or ""), "description": str(d.get("description") or "")}
            for d in documents
        ]
        with self.lock:
            self.documents = cleaned
        return json_response({"documents": len(cleaned)})

    def search(self, query: str, count: int) -> list[dict[str, Any]]:
        asked = words(query)
        with self.lock:
            documents = list(self.documents)
        scored = []
        for i, doc in enumerate(documents):
            shared = len(asked & words(f"{doc['title']} {doc['description']} {doc['url']}"))
            if shared:
                scored.append((-shared, i, doc))
        scored.sort(key=lambda s: (s[0], s[1]))
        return [dict(doc) for _, _, doc in scored[:count]]

    def handle(self, call: Call) -> Response:
        args = call.request.args
        query = (args.get("q") or "").strip()
        if not query or len(query) > MAX_QUERY:
            return self.error(422, "VALIDATION", f"q must be 1 to {MAX_QUERY} characters")
        try:
            count = int(args.get("count") or DEFAULT_COUNT)
        except ValueError:
            return self.error(422, "VALIDATION", "count must be a number")
        if not 1 <= count <= MAX_COUNT:
            return self.error(422, "VALIDATION", f"count must be 1 to {MAX_COUNT}")
        results = self.search(query, count)
        return json_response(
            {"type": "search", "query": {"original": query}, "web": {"type": "search", "results": results}}
        )
