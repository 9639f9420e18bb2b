"""Webhook delivery for the Stripe sandbox: signed like Stripe, with the test controls that make
duplicates, reordering and late arrival happen on purpose.

Events are handed over in *batches* (everything one API call or hosted-page action produced) and
delivered by one background thread, in order, to the configured URL. Each POST carries the event
JSON and ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body" under the endpoint
secret>`` (the scheme ``stripe.Webhook.construct_event`` verifies). A non-2xx answer or a
connection error is retried after each of ``retry_delays`` seconds, then given up.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
from typing import Any

import httpx

DEFAULT_SECRET = "whsec_sandbox_morket"  # noqa: S105 - the documented test secret
DELIVERY_TIMEOUT = 10.0
DELIVERY_LOG_LIMIT = 10_000


def signature_header(payload: bytes, secret: str | list[str], timestamp: int | None = None) -> str:
    """Stripe's ``Stripe-Signature`` value for ``payload``: ``t=…,v1=…``, one ``v1`` per secret
    (during a secret's rotation Stripe signs with the old and the new one)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    keys = [secret] if isinstance(secret, str) else secret
    signed = f"{stamp}.".encode() + payload
    return ",".join([f"t={stamp}", *(f"v1={hmac.new(k.encode(), signed, hashlib.sha256).hexdigest()}" for k in keys)])


def reordered(items: list[Any], order: str, seed: int | None) -> list[Any]:
    """``items`` as created, reversed or shuffled (a shuffle of two or more always changes the order)."""
    if order == "created":
        return list(items)
    if order == "reverse":
        return list(reversed(items))
    if order != "shuffle":
        raise ValueError("order must be created, reverse or shuffle")
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    if len(shuffled) > 1 and shuffled == items:
        shuffled.reverse()
    return shuffled


class WebhookDispatcher:
    """The queue of events to send, the hold/shuffle/duplicate controls and the delivery log."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.client = httpx.Client(timeout=DELIVERY_TIMEOUT)
        self.thread: threading.Thread | None = None
        self.reset()

    def reset(self) -> None:
        with self.cond:
            self.url: str | None = None
            self.secret: str | list[str] = DEFAULT_SECRET
            self.retry_delays: list[float] = [0.5, 2.0, 5.0]
            self.duplicates = 0  # extra copies of every event
            self.holding = False
            self.held: list[dict[str, Any]] = []
            self.shuffle_next: int | None = None  # the seed for the next batch, when asked
            self.queue: list[tuple[float, int, dict[str, Any], int]] = []  # (due, seq, event, attempt)
            self.seq = itertools.count()
            self.in_flight = 0
            self.log: list[dict[str, Any]] = []
            self.generation = getattr(self, "generation", 0) + 1
            self.cond.notify_all()

    def settings(self) -> dict[str, Any]:
        with self.cond:
            return {
                "webhook_url": self.url,
                "webhook_secret": self.secret,
                "retry_delays": self.retry_delays,
                "duplicates": self.duplicates,
                "holding": self.holding,
                "held": len(self.held),
            }

    def configure(self, values: dict[str, Any]) -> None:
        with self.cond:
            if "webhook_url" in values:
                self.url = values["webhook_url"] or None
            if "webhook_secret" in values:
                self.secret = values["webhook_secret"]
            if "retry_delays" in values:
                self.retry_delays = values["retry_delays"]
            if "duplicates" in values:
                self.duplicates = values["duplicates"]

    # -- controls -------------------------------------------------------------------------

    def hold(self) -> None:
        with self.cond:
            self.holding = True

    def release(self, order: str = "created", seed: int | None = None) -> int:
        """Stop holding and send what was held, in ``order``; the number of events released."""
        with self.cond:
            batch = reordered(self.held, order, seed)
            self.held = []
            self.holding = False
            self._enqueue(batch)
            return len(batch)

    def shuffle(self, seed: int | None) -> None:
        with self.cond:
            self.shuffle_next = 0 if seed is None else seed

    def resend(self, event: dict[str, Any], times: int) -> None:
        with self.cond:
            self._enqueue([event] * times)

    # -- the queue ------------------------------------------------------------------------

    def submit(self, batch: list[dict[str, Any]]) -> None:
        """Send one batch of events (held, shuffled and duplicated as the controls say)."""
        if not batch:
            return
        with self.cond:
            if self.shuffle_next is not None:
                batch = reordered(batch, "shuffle", self.shuffle_next)
                self.shuffle_next = None
            batch = [e for e in batch for _ in range(1 + self.duplicates)]
            if self.holding:
                self.held.extend(batch)
                return
            self._enqueue(batch)

    def _enqueue(self, events: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for event in events:
            heapq.heappush(self.queue, (now, next(self.seq), event, 1))
        self._ensure_thread()
        self.cond.notify_all()

    def _ensure_thread(self) -> None:
        if self.thread is None or not self.thread.is_alive():
            self.thread = threading.Thread(target=self._run, name="stripe-webhooks", daemon=True)
            self.thread.start()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is queued or in flight (held events do not count); False on timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.queue or self.in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.05))
            return True

    def deliveries(self) -> list[dict[str, Any]]:
        with self.cond:
            return list(self.log)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue or self.queue[0][0] > time.monotonic():
                    wait = self.queue[0][0] - time.monotonic() if self.queue else 1.0
                    self.cond.wait(max(0.01, min(wait, 1.0)))
                _, _, event, attempt = heapq.heappop(self.queue)
                url, secret, generation = self.url, self.secret, self.generation
                self.in_flight += 1
            try:
                status, error = self._post(url, secret, event) if url else (None, "no webhook_url configured")
            finally:
                with self.cond:
                    self.in_flight -= 1
                    if generation == self.generation:
                        self._after(event, attempt, url, status, error)
                    self.cond.notify_all()

    def _post(self, url: str, secret: str | list[str], event: dict[str, Any]) -> tuple[int | None, str | None]:
        payload = json.dumps(event, indent=2).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": signature_header(payload, secret),
        }
        try:
            response = self.client.post(url, content=payload, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None

    def _after(
        self, event: dict[str, Any], attempt: int, url: str | None, status: int | None, error: str | None
    ) -> None:
        ok = status is not None and 200 <= status < 300
        self.log.append({"event": event["id"], "type": event["type"], "attempt": attempt, "url": url,
                         "status": status, "error": error, "ok": ok, "at": time.time()})  # fmt: skip
        del self.log[:-DELIVERY_LOG_LIMIT]
        if not ok and url and attempt <= len(self.retry_delays):
            due = time.monotonic() + self.retry_delays[attempt - 1]
            heapq.heappush(self.queue, (due, next(self.seq), event, attempt + 1))
