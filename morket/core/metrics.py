"""Prometheus metrics; multiprocess mode when PROMETHEUS_MULTIPROC_DIR is set (gunicorn).

``/metrics`` answers only a scraper that sends ``Authorization: Bearer <MORKET_METRICS_TOKEN>``
or that reaches the app from a network in ``MORKET_METRICS_ALLOW`` (``metrics_refusal``).
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from flask import current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from morket.core.security import tokens_equal

REQUESTS = Counter("morket_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "morket_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one finished request and its latency."""
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


def render_metrics() -> tuple[bytes, str]:
    """Return the exposition text for this process or, under gunicorn, all of them."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def _request_addresses() -> list[str]:
    """Every address the request names: the connection's peer and each X-Forwarded-For hop.

    The peer is read from before ProxyFix rewrote it: a caller who can reach the app's port can
    write any X-Forwarded-For, so a forwarded address alone proves nothing.
    """
    environ = request.environ
    peer = environ.get("werkzeug.proxy_fix.orig", {}).get("REMOTE_ADDR", environ.get("REMOTE_ADDR"))
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    return [peer or "", *(hop.strip() for hop in forwarded.split(",") if hop.strip())]


def _from_allowed_network(networks: list[Any]) -> bool:
    # Through a load balancer, the peer is the balancer and the caller is in X-Forwarded-For:
    # every address must be allowed, so a public caller behind an allowed balancer is not.
    if not networks:
        return False
    for address in _request_addresses():
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if not any(ip in network for network in networks):
            return False
    return True


def _sent_token(expected: str) -> bool:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    return bool(expected) and scheme.lower() == "bearer" and tokens_equal(credential.strip(), expected)


def metrics_refusal() -> int | None:
    """The status that refuses this request to /metrics, or None when it may read them.

    404 while neither a token nor a network is configured (the endpoint is off); 401 to a request
    with neither the token (compared in constant time) nor an allowed network.
    """
    settings = current_app.config["MORKET"]
    token, networks = settings["METRICS_TOKEN"], settings["METRICS_ALLOW"]
    if not token and not networks:
        return 404
    if _sent_token(token) or _from_allowed_network(networks):
        return None
    return 401
