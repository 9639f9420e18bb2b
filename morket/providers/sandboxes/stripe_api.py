"""The Stripe sandbox's request plumbing: Stripe's error shape, bracket-form parsing, parameter
checks, ids and calendar intervals."""

from __future__ import annotations

import calendar
import re
import secrets
import string
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

API_VERSION = "2026-10-28.endive"
DOCS = "https://docs.stripe.com/error-codes"
DAY = 86_400
LIST_MAX = 100
DECLINES = {
    "4000000000009995": ("insufficient_funds", "Your card has insufficient funds."),
    "4000000000000002": ("generic_decline", "Your card was declined."),
}
LATER_DECLINES = {**DECLINES, "4000000000000341": ("generic_decline", "Your card was declined.")}
DEFAULT_CARD = "4242424242424242"

# id prefix -> kind of object (what ``expand`` and the id lookups resolve)
KINDS = {
    "cus": "customer", "prod": "product", "price": "price", "cs": "checkout.session", "sub": "subscription",
    "in": "invoice", "pi": "payment_intent", "ch": "charge", "re": "refund", "evt": "event",
    "clock": "test_helpers.test_clock", "bps": "billing_portal.session", "dp": "dispute",
}  # fmt: skip
ALNUM = string.ascii_letters + string.digits


class StripeError(Exception):
    """An answer in Stripe's error shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "type": type_}
        if code:
            self.body.update(code=code, doc_url=f"{DOCS}#{code.replace('_', '-')}")
        if param:
            self.body["param"] = param
        if decline_code:
            self.body["decline_code"] = decline_code


def missing(param: str) -> StripeError:
    return StripeError(400, f"Missing required param: {param}.", code="parameter_missing", param=param)


def no_such(kind: str, ident: str, param: str = "id") -> StripeError:
    name = kind.rsplit(".", 1)[-1].replace("_", " ")
    return StripeError(404, f"No such {name}: '{ident}'", code="resource_missing", param=param)


def new_id(prefix: str, length: int = 14) -> str:
    return f"{prefix}_" + "".join(secrets.choice(ALNUM) for _ in range(length))


def parse_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's bracket form keys (``a[b][0][c]=v``, ``a[]=v``) as nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, tail = key.partition("[")
        parts = [head, *re.findall(r"\[([^\]]*)\]", "[" + tail)] if tail else [head]
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(sum(1 for k in node if k.isdigit()))
            if last:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise StripeError(400, f"Invalid object: {key}", param=key)
                node = child
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    node = {k: _listify(v) for k, v in node.items()}
    if node and all(k.isdigit() for k in node):
        return [node[k] for k in sorted(node, key=int)]
    return node


def add_interval(ts: int, interval: str, count: int = 1) -> int:
    """``ts`` moved on by ``count`` intervals, months by the calendar (31 Jan + 1 month = 28/29 Feb)."""
    if interval == "day":
        return ts + count * DAY
    if interval == "week":
        return ts + count * 7 * DAY
    months = count * (12 if interval == "year" else 1)
    start = datetime.fromtimestamp(ts, UTC)
    year, month = divmod(start.month - 1 + months, 12)
    year, month = start.year + year, month + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


class Params:
    """A request's parameters with Stripe's checks: unknown, missing, integers and booleans."""

    def __init__(self, values: dict[str, Any], allowed: set[str]) -> None:
        self.values = values
        for key in values:
            if key not in allowed and key != "expand":
                raise StripeError(400, f"Received unknown parameter: {key}", code="parameter_unknown", param=key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def text(self, key: str, *, required: bool = False) -> str | None:
        value = self.values.get(key)
        if value is None or value == "":
            if required:
                raise missing(key)
            return None
        if not isinstance(value, str):
            raise StripeError(400, f"Invalid string: {key}", param=key)
        return value

    def integer(self, key: str, *, required: bool = False, minimum: int | None = None) -> int | None:
        value = self.text(key, required=required)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise StripeError(400, f"Invalid integer: {value}", param=key) from None
        if minimum is not None and number < minimum:
            raise StripeError(400, f"This value must be greater than or equal to {minimum}.", param=key)
        return number

    def boolean(self, key: str) -> bool | None:
        value = self.text(key)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise StripeError(400, f"Invalid boolean: {value}", param=key)
        return value == "true"

    def url(self, key: str, *, required: bool = False) -> str | None:
        """An http(s) URL (Stripe refuses anything else with "Not a valid URL")."""
        value = self.text(key, required=required)
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise StripeError(400, "Not a valid URL", code="url_invalid", param=key)
        return value

    def mapping(self, key: str) -> dict[str, str]:
        value = self.values.get(key)
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise StripeError(400, f"Invalid object: {key}", param=key)
        return {str(k): str(v) for k, v in value.items()}

    def expand(self) -> list[str]:
        value = self.values.get("expand") or []
        return [value] if isinstance(value, str) else list(value)
