"""Website: scrape a company's own site for its name, contacts and technologies.

The row-run engine calls providers from a pool of threads in the enrichment worker, while a
browser belongs to one thread of one scrape worker. So this adapter is asynchronous: ``call``
queues a scrape job on the scrape queue and answers ``pending`` with a callback id (the one the
engine already recorded on the row, ``CallContext.callback_id``); the scrape worker reads the
site (SSRF check, robots.txt, the domain's limit and breaker, the company extractor) and files
the answer with ``morket.runs.callbacks.complete_callback``, as a webhook would, however soon it
finishes. Cell states, progress, credits (charged on a hit) and the cache are the engine's.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError
from rq import Queue

from morket.core.jobs import JOB_TIMEOUT_SECONDS, QUEUE_SCRAPE
from morket.core.urlsafety import UnsafeUrl
from morket.providers.base import CallContext, FieldSpec, InputSpec, Operation, Provider, Result
from morket.providers.registry import register

NAME = "website"
PAGE_READ = "Read "  # how a hit's note starts: "Read https://final.example/"

SCRAPE = Operation(
    key="website.scrape",
    provider=NAME,
    label="Website: scrape the company's site",
    # Kind "url": the scrape reads the site as given (a subdomain is a site of its own), where the
    # data providers send the registrable domain; the drawer's preview shows what each one sends.
    inputs=(InputSpec("domain", "Company domain or URL", kind="url"),),
    outputs=(
        FieldSpec("name", "Company name"),
        FieldSpec("description", "Description"),
        FieldSpec("emails", "Emails", "json"),
        FieldSpec("phones", "Phones", "json"),
        FieldSpec("socials", "Social profiles", "json"),
        FieldSpec("address", "Address"),
        FieldSpec("technologies", "Technologies", "json"),
        FieldSpec("logo", "Logo", "url"),
        FieldSpec("careers_url", "Careers page", "url"),
    ),
    asynchronous=True,
)


def result_from_webhook(payload: Mapping[str, Any]) -> Result:
    """Turn the scrape worker's answer into a Result (the engine calls this for our callbacks)."""
    outcome = payload.get("outcome")
    if outcome == "hit":
        values = payload.get("values") or {}
        found = {k: values.get(k) for k in SCRAPE.output_names if k in values}
        # The attempt's note names the page read (after redirects), for the cell's detail.
        page = str(payload.get("final_url") or "")[:2000]
        return Result("hit", values=found, http_status=200, message=f"{PAGE_READ}{page}" if page else None)
    if outcome in ("not_found", "invalid_input", "retryable", "rate_limited"):
        return Result(outcome, http_status=payload.get("http_status"), message=payload.get("message"))
    return Result("invalid_input", message="The scrape answer could not be read.")


class WebsiteProvider(Provider):
    """Reads the company's public pages; needs no API key."""

    def call(
        self, op: Operation, inputs: Mapping[str, Any], ctx: CallContext, options: Mapping[str, Any] | None = None
    ) -> Result:
        """Queue the scrape of ``inputs['domain']`` and wait for its answer on a callback id."""
        from morket.scraping import app_for_threads
        from morket.scraping.scraper import normalise_target

        try:
            url = normalise_target(str(inputs.get("domain") or ""))
        except UnsafeUrl as exc:
            return Result("invalid_input", message=exc.message)
        callback_id = ctx.callback_id or uuid.uuid4().hex
        try:
            queue = Queue(QUEUE_SCRAPE, connection=app_for_threads().extensions["morket_redis"])
            # Straight to RQ, not the outbox: the call runs outside the engine's session, and a lost
            # job only means the row's callback never comes (the engine then moves it on).
            queue.enqueue_call(
                "workers.runner.run_job",
                args=("morket.scraping.tasks.scrape_for_enrichment", [callback_id, url]),
                job_id=f"scrape-enrich-{callback_id}",
                timeout=JOB_TIMEOUT_SECONDS,
                result_ttl=600,
                failure_ttl=86400,
            )
        except RedisError:
            return Result("retryable", message="The scrape queue is unreachable.")
        return Result("pending", callback_id=callback_id)


PROVIDER = register(
    WebsiteProvider(
        name=NAME,
        label="Website",
        operations=(SCRAPE,),
        default_base_url="",
        default_rate=20.0,
        requires_key=False,
    )
)
