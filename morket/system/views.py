"""Landing page, /healthz, /readiness and /metrics."""

from __future__ import annotations

from flask import Response, abort, jsonify, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import text

from morket.core.jobs import redis_connection
from morket.core.metrics import metrics_refusal, render_metrics
from morket.core.ratelimit import METRICS_LIMIT, client_ip
from morket.extensions import db, limiter
from morket.system import bp


@bp.get("/")
def index():
    if current_user.is_authenticated:
        return redirect(url_for("workspaces.home"))
    return render_template("system/landing.html")


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readiness")
@limiter.exempt
def readiness():
    """Readiness: PostgreSQL and Redis both answer, else 503 naming the one that did not."""
    checks: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["postgres"] = "ok"
    except Exception:  # noqa: BLE001 - any failure means not ready
        db.session.rollback()
        checks["postgres"] = "unavailable"
    try:
        redis_connection().ping()
        checks["redis"] = "ok"
    except Exception:  # noqa: BLE001
        checks["redis"] = "unavailable"
    ready = all(v == "ok" for v in checks.values())
    return jsonify({"status": "ready" if ready else "unavailable", "checks": checks}), 200 if ready else 503


def _metrics_caller() -> str:
    return f"metrics:{client_ip()}"


@bp.get("/metrics")
@limiter.limit(METRICS_LIMIT, key_func=_metrics_caller)
def metrics():
    """Prometheus exposition, for a scraper with the token or on an allowed network (core/metrics.py)."""
    refused = metrics_refusal()
    if refused == 401:
        return Response(
            "Send Authorization: Bearer <MORKET_METRICS_TOKEN>.\n",
            401,
            mimetype="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="morket-metrics"'},
        )
    if refused is not None:
        abort(refused)
    body, content_type = render_metrics()
    return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)
