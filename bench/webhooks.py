"""Webhook delivery bench: Morket's delivery path against a bare signed-POST loop, same receiver, same concurrency.

Usage: ``python -m bench.webhooks --events 2000 [--concurrency 4]``

A receiver (``http.server``, answering 200 at once) runs in its own process on loopback. Morket
side: ``--concurrency`` endpoints, each subscribed to ``row.created``; N events are written
through ``webhooks.service.emit_event`` and committed; then one thread per endpoint runs the
delivery job (``webhooks.tasks.deliver_endpoint``: the advisory lock, the next due delivery, the
target check and pinning, Standard Webhooks signing, the POST, the attempt row and the commit)
until every delivery has succeeded. Bare side: the same number of threads, each POSTing its
share of the same bodies with the same signature headers through one httpx client, nothing
else. ``ratios.delivery_over_bare`` is Morket's deliveries per second over the bare loop's.

Runs in the bench database (``MORKET_BENCH_DATABASE_URL``, else ``morket_bench_webhooks`` on
127.0.0.1:5432, created and migrated when missing) and on ``MORKET_REDIS_URL`` (else
``redis://127.0.0.1:6379/0``). When ``bench/inbound.py`` exists its ``measure(rows)`` figures and
ratios are merged in (``--inbound-rows``, default the event count). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.engine import make_url

from bench.common import bench_workspace, ensure_database, log

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/morket_bench_webhooks"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one write (http.server flushes after each request): two small
    # writes would wait on the client's delayed ACK (about 40 ms) and measure that, not Morket.
    wbufsize = 64 * 1024

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def _serve(port_box) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    port_box.put(server.server_address[1])
    server.serve_forever()


def _app(url: str, redis_url: str):
    from morket import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": url,
            "REDIS_URL": redis_url,
            "TESTING": True,
            "MORKET": {"ENV": "test", "WEBHOOK_ALLOW_HTTP_LOOPBACK": True},
        }
    )


def _setup(app, receiver: str, events: int, concurrency: int) -> list[int]:
    """Fresh endpoints and N committed events spread over them; return the endpoint ids."""
    from morket.extensions import db
    from morket.webhooks import service
    from morket.webhooks.models import WebhookEndpoint, WebhookEvent

    with app.app_context():
        workspace, owner = bench_workspace("bench-webhooks", "Webhooks bench")
        db.session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.workspace_id == workspace.id))
        db.session.execute(delete(WebhookEvent).where(WebhookEvent.workspace_id == workspace.id))
        db.session.commit()
        endpoints = []
        for i in range(concurrency):
            endpoint, _ = service.create_endpoint(workspace, owner, f"{receiver}/e{i}", ["row.created"])
            endpoints.append(endpoint)
        db.session.commit()
        for n in range(events):
            target = endpoints[n % concurrency]
            data = {"table": {"id": 1, "name": "Leads"}, "row_ids": [n + 1], "count": 1}
            service.emit_event(workspace.id, "row.created", data, endpoints=[target])
            if n % 500 == 499:
                db.session.commit()
        db.session.commit()
        return [e.id for e in endpoints]


def _bodies(app, endpoint_ids: list[int]) -> dict[int, list[tuple[bytes, dict[str, str]]]]:
    """The exact bodies and headers Morket sends, per endpoint, for the bare loop to send too."""
    from morket.extensions import db
    from morket.webhooks import service, tasks
    from morket.webhooks.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
    from morket.webhooks.signing import signed_headers

    found: dict[int, list[tuple[bytes, dict[str, str]]]] = {}
    with app.app_context():
        for endpoint_id in endpoint_ids:
            secrets = service.signing_secrets(db.session.get(WebhookEndpoint, endpoint_id))
            events = db.session.scalars(
                select(WebhookEvent)
                .join(WebhookDelivery, WebhookDelivery.event_id == WebhookEvent.id)
                .where(WebhookDelivery.endpoint_id == endpoint_id)
                .order_by(WebhookEvent.id)
            )
            found[endpoint_id] = [
                (body := tasks.body_of(e), signed_headers(secrets, e.uid, int(time.time()), body)) for e in events
            ]
    return found


def _morket(app, endpoint_ids: list[int]) -> float:
    from morket.extensions import db
    from morket.webhooks import tasks
    from morket.webhooks.models import WebhookDelivery

    errors: list[BaseException] = []

    def drain(endpoint_id: int) -> None:
        try:
            with app.app_context():
                while tasks.deliver_endpoint(endpoint_id):
                    pass
                db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - re-raised by the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(i,)) for i in endpoint_ids]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    with app.app_context():
        left = db.session.scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id.in_(endpoint_ids), WebhookDelivery.status != "succeeded")
        )
    if left:
        raise RuntimeError(f"{left} deliveries did not succeed")
    return elapsed


def _bare(receiver: str, bodies: dict[int, list[tuple[bytes, dict[str, str]]]], secrets: list[str]) -> float:
    from morket.webhooks.signing import signed_headers

    client = httpx.Client(follow_redirects=False, limits=httpx.Limits(max_connections=64))

    def post_all(i: int, items: list[tuple[bytes, dict[str, str]]]) -> None:
        for body, prepared in items:
            # Signed here, per request, as Morket does.
            headers = signed_headers(secrets, prepared["webhook-id"], int(time.time()), body)
            resp = client.post(
                f"{receiver}/e{i}", content=body, headers={**headers, "Content-Type": "application/json"}, timeout=10
            )
            assert resp.status_code == 200

    threads = [threading.Thread(target=post_all, args=(n, items)) for n, items in enumerate(bodies.values())]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    client.close()
    return elapsed


def _secret() -> str:
    from morket.webhooks.signing import generate_secret

    return generate_secret()


def _inbound(rows: int) -> dict[str, Any] | None:
    try:
        from bench import inbound
    except ImportError:
        return None
    return inbound.measure(rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the bench and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=4, help="endpoints delivered at once (threads)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; medians are reported")
    parser.add_argument("--inbound-rows", type=int, default=None)
    args = parser.parse_args(argv)
    if args.events < 1 or args.concurrency < 1 or args.repeat < 1:
        parser.error("--events, --concurrency and --repeat must be at least 1")
    url = os.environ.get("MORKET_BENCH_DATABASE_URL", DEFAULT_URL)
    sa_url = make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    redis_url = os.environ.get("MORKET_REDIS_URL") or "redis://127.0.0.1:6379/0"
    ensure_database(sa_url)
    from flask_migrate import upgrade

    app = _app(sa_url, redis_url)
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"), revision="heads")

    port_box: multiprocessing.Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(port_box,), daemon=True)
    server.start()
    receiver = f"http://127.0.0.1:{port_box.get(timeout=10)}"
    morket_s: list[float] = []
    bare_s: list[float] = []
    try:
        for run in range(args.repeat):
            endpoint_ids = _setup(app, receiver, args.events, args.concurrency)
            bodies = _bodies(app, endpoint_ids)
            # Alternate which side goes first, so that neither always meets the warmer machine.
            if run % 2:
                morket_s.append(_morket(app, endpoint_ids))
                bare_s.append(_bare(receiver, bodies, [_secret()]))
            else:
                bare_s.append(_bare(receiver, bodies, [_secret()]))
                morket_s.append(_morket(app, endpoint_ids))
            log(f"run {run + 1}: morket {morket_s[-1]:.2f} s, bare {bare_s[-1]:.2f} s for {args.events} deliveries")
    finally:
        server.terminate()
    morket_rate = args.events / statistics.median(morket_s)
    bare_rate = args.events / statistics.median(bare_s)
    figures: dict[str, Any] = {
        "events": args.events,
        "concurrency": args.concurrency,
        "deliveries_per_s": round(morket_rate, 1),
        "bare_posts_per_s": round(bare_rate, 1),
        "delivery_ms_each": round(1000 * args.concurrency / morket_rate, 3),
        "bare_ms_each": round(1000 * args.concurrency / bare_rate, 3),
    }
    ratios: dict[str, Any] = {"delivery_over_bare": round(morket_rate / bare_rate, 3)}
    inbound = _inbound(args.inbound_rows or args.events)
    if inbound:
        figures.update(inbound.get("figures", {}))
        ratios.update(inbound.get("ratios", {}))
    result = {"figures": figures, "ratios": ratios}
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
