"""The website enrichment provider: it queues a scrape on the scrape queue and reads the worker's answer."""

from __future__ import annotations

import httpx
from rq import Queue

from morket.core.jobs import QUEUE_SCRAPE
from morket.providers import registry
from morket.providers.base import CallContext
from morket.providers.website import result_from_webhook


def _call(domain: str):
    op = registry.get_operation("website.scrape")
    with httpx.Client() as client:
        ctx = CallContext(client=client, api_key=None, base_url="")
        return registry.provider_for("website.scrape").call(op, {"domain": domain}, ctx, {})


def test_call_queues_a_scrape_and_waits_for_its_callback(app, db):
    result = _call("acme.com")
    assert result.outcome == "pending" and result.callback_id
    queue = Queue(QUEUE_SCRAPE, connection=app.extensions["morket_redis"])
    (job,) = queue.get_jobs()
    assert job.args == ("morket.scraping.tasks.scrape_for_enrichment", [result.callback_id, "https://acme.com/"])


def test_bad_input_is_a_final_failure(app, db):
    for value in ("", "ftp://acme.com/x"):
        result = _call(value)
        assert result.outcome == "invalid_input" and result.message
    assert Queue(QUEUE_SCRAPE, connection=app.extensions["morket_redis"]).count == 0


def test_answers_map_to_results():
    hit = result_from_webhook({"outcome": "hit", "values": {"name": "Acme", "people": [], "emails": ["a@acme.com"]}})
    assert hit.outcome == "hit" and hit.values == {"name": "Acme", "emails": ["a@acme.com"]}
    missing = result_from_webhook({"outcome": "not_found", "message": "The site answered 404 Not Found."})
    assert (missing.outcome, missing.message) == ("not_found", "The site answered 404 Not Found.")
    assert result_from_webhook({"outcome": "retryable"}).outcome == "retryable"
    assert result_from_webhook({"what": "ever"}).outcome == "invalid_input"
