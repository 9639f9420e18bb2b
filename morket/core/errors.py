"""Domain errors raised by services; views and the API map them to responses."""

from __future__ import annotations


class MorketError(Exception):
    """Base for errors a user can be told about."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationFailed(MorketError):
    status = 422
    code = "validation_error"


class NotFound(MorketError):
    status = 404
    code = "not_found"


class Forbidden(MorketError):
    status = 403
    code = "forbidden"


class Unauthorized(MorketError):
    status = 401
    code = "unauthorized"


class Conflict(MorketError):
    status = 409
    code = "conflict"


class Locked(MorketError):
    status = 423
    code = "locked"
