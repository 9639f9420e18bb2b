"""The one pair of helpers that build every JSON API response envelope."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify


def api_ok(data: Any = None, *, status: int = 200, meta: dict[str, Any] | None = None) -> tuple[Response, int]:
    """Return ``{success: true, data, error: null, meta}``."""
    return jsonify({"success": True, "data": data, "error": None, "meta": meta or {}}), status


def api_error(
    code: str,
    message: str,
    *,
    status: int,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[Response, int]:
    """Return ``{success: false, data: null, error: {code, message, fields}, meta}``."""
    resp = jsonify(
        {
            "success": False,
            "data": None,
            "error": {"code": code, "message": message, "fields": fields or {}},
            "meta": {},
        }
    )
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp, status
