"""Cell values per column type: parse what a user, a paste or the API sends, or say clearly why not.

``parse_cell(column_type, config, raw)`` returns the Python value stored in the typed PostgreSQL
column (``None`` for an empty cell) or raises ``CellError`` with a message meant for the user.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from morket.tables.number_format import CURRENCY_CODES


class CellError(ValueError):
    """A value that does not fit its column; the message is shown next to the cell."""


TEXT_MAX = 10_000
LONG_TEXT_MAX = 200_000
JSON_MAX = 200_000
SELECT_OPTION_MAX = 100
# PostgreSQL's numeric holds far more, but a GTM number beyond this is a paste error, not data.
NUMBER_MAX_ABS = Decimal(10) ** 18
NUMBER_MIN_EXPONENT = -12
COMPUTED_TYPES = frozenset({"formula", "lookup"})

_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_CURRENCY_SIGNS = "$€£¥₹"
_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]{1,64}@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_PHONE = re.compile(r"^\+?[\d\s().\-/]{4,30}(?:\s*(?:x|ext\.?)\s*\d{1,6})?$", re.IGNORECASE)
_TRUE = frozenset({"true", "t", "yes", "y", "1", "x", "checked", "on"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "unchecked", "off"})


def _is_blank(raw: Any) -> bool:
    return raw is None or (isinstance(raw, str) and raw.strip() == "")


def _text(raw: Any, limit: int) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        raise CellError("Expected text.")
    value = raw if isinstance(raw, str) else str(raw)
    check_characters(value)
    if len(value) > limit:
        raise CellError(f"Text is longer than {limit:,} characters.")
    return value


def check_characters(value: str) -> None:
    """Raise CellError for characters PostgreSQL text cannot store (NUL, lone surrogates)."""
    if "\x00" in value:
        raise CellError("Text cannot contain a NUL character.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CellError("Text contains an invalid character (a lone surrogate).") from exc


def _number(raw: Any, *, strip: str = "", codes: tuple[str, ...] = ()) -> Decimal:
    if isinstance(raw, bool):
        raise CellError("Expected a number, got true/false.")
    if isinstance(raw, int | Decimal):
        value = Decimal(raw)
    elif isinstance(raw, float):
        if not math.isfinite(raw):
            raise CellError("Expected a finite number.")
        value = Decimal(repr(raw))
    elif isinstance(raw, str):
        cleaned = raw.strip().replace(" ", "")
        # A currency code after the amount, as the grid shows currencies ("1,234.50 USD").
        if len(cleaned) > 3 and cleaned[-3:].upper() in codes:
            cleaned = cleaned[:-3]
        for sign in strip:
            if cleaned.startswith(sign) or cleaned.startswith("-" + sign):
                cleaned = cleaned.replace(sign, "", 1)
            elif cleaned.endswith(sign):
                cleaned = cleaned[: -len(sign)]
        if _THOUSANDS.match(cleaned):
            cleaned = cleaned.replace(",", "")
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?", cleaned):
            raise CellError(f"“{raw[:40]}” is not a number.")
        try:
            value = Decimal(cleaned)
        except InvalidOperation as exc:  # pragma: no cover - the pattern above admits only decimals
            raise CellError(f"“{raw[:40]}” is not a number.") from exc
    else:
        raise CellError("Expected a number.")
    if not value.is_finite():
        raise CellError("Expected a finite number.")
    if abs(value) >= NUMBER_MAX_ABS:
        raise CellError("Number is too large (limit: 10^18).")
    if value != 0 and value.as_tuple().exponent < NUMBER_MIN_EXPONENT:  # type: ignore[operator]
        raise CellError(f"Number has more than {-NUMBER_MIN_EXPONENT} decimal places.")
    if value == 0:
        value = abs(value)
    return value


def _date(raw: Any) -> date:
    if isinstance(raw, datetime):
        raise CellError("Expected a date without a time.")
    if isinstance(raw, date):
        return raw
    if not isinstance(raw, str):
        raise CellError("Expected a date (YYYY-MM-DD).")
    try:
        return date.fromisoformat(raw.strip())
    except ValueError as exc:
        raise CellError(f"“{raw[:40]}” is not a date (YYYY-MM-DD).") from exc


def _datetime(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, date):
        value = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw.strip())
        except ValueError as exc:
            raise CellError(f"“{raw[:40]}” is not a date and time (YYYY-MM-DD HH:MM).") from exc
    else:
        raise CellError("Expected a date and time.")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise CellError("Date and time is out of range.") from exc


def _checkbox(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise CellError("Expected checked or unchecked (true/false).")


def select_options(config: dict[str, Any]) -> list[str]:
    """Return the option names of a select column's config."""
    options = config.get("options") or []
    return [o["name"] if isinstance(o, dict) else str(o) for o in options]


def _option(raw: Any, options: list[str]) -> str:
    if not isinstance(raw, str):
        raise CellError("Expected one of the column's options.")
    wanted = raw.strip()
    for option in options:
        if option == wanted:
            return option
    folded = wanted.casefold()
    for option in options:
        if option.casefold() == folded:
            return option
    shown = ", ".join(options[:8]) or "none yet"
    raise CellError(f"“{wanted[:40]}” is not an option (options: {shown}).")


def _multi(raw: Any, options: list[str]) -> list[str]:
    if isinstance(raw, str):
        parts = [p for p in (part.strip() for part in raw.split(",")) if p]
    elif isinstance(raw, list | tuple):
        parts = list(raw)
    else:
        raise CellError("Expected a list of the column's options.")
    chosen: list[str] = []
    for part in parts:
        option = _option(part, options)
        if option not in chosen:
            chosen.append(option)
    return chosen


def _email(raw: Any) -> str:
    value = _text(raw, 320).strip()
    if not _EMAIL.match(value):
        raise CellError(f"“{value[:60]}” is not an email address.")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def _hostname(host: str) -> str | None:
    host = host.strip().rstrip(".").lower()
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    labels = host.split(".")
    if len(host) > 253 or len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels):
        return None
    if not _TLD.match(labels[-1]):
        return None
    return host


def _url(raw: Any) -> str:
    value = _text(raw, 2048).strip()
    candidate = value if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", value) else "https://" + value
    try:
        parts = urlsplit(candidate)
        port = parts.port
    except ValueError as exc:
        raise CellError(f"“{value[:60]}” is not a web address.") from exc
    host = _hostname(parts.hostname or "")
    if parts.scheme.lower() not in ("http", "https") or host is None or any(c.isspace() for c in candidate):
        raise CellError(f"“{value[:60]}” is not a web address (http or https).")
    netloc = host if port is None else f"{host}:{port}"
    if parts.username or parts.password:
        raise CellError("Web addresses with a user name or password are not accepted.")
    return urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))


def _domain(raw: Any) -> str:
    value = _text(raw, 2048).strip()
    candidate = value if "://" in value else "https://" + value
    try:
        host = urlsplit(candidate).hostname or ""
    except ValueError:
        host = ""
    host = _hostname(host) or ""
    if host.startswith("www.") and host.count(".") >= 2:
        host = host[4:]
    if not host:
        raise CellError(f"“{value[:60]}” is not a domain (like acme.com).")
    return host


def _phone(raw: Any) -> str:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    value = _text(raw, 40).strip()
    digits = sum(ch.isdigit() for ch in value.split("x")[0].split("ext")[0])
    if not _PHONE.match(value) or not 4 <= digits <= 15:
        raise CellError(f"“{value[:40]}” is not a phone number.")
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise CellError("JSON is nested too deeply.")
    if isinstance(value, float) and not math.isfinite(value):
        raise CellError("JSON cannot hold NaN or Infinity.")
    if isinstance(value, str):
        check_characters(value)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise CellError("JSON object keys must be text.")
            _check_json(key, depth + 1)
            _check_json(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json(item, depth + 1)
    elif value is not None and not isinstance(value, str | int | float | bool):
        raise CellError("Expected a JSON value.")


def _json(raw: Any) -> Any:
    if isinstance(raw, str):
        if len(raw) > JSON_MAX:
            raise CellError(f"JSON is longer than {JSON_MAX:,} characters.")
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise CellError("Not valid JSON.") from exc
    else:
        value = raw
    _check_json(value)
    if value is None:
        raise CellError("Use an empty cell rather than JSON null.")
    if len(json.dumps(value)) > JSON_MAX:
        raise CellError(f"JSON is longer than {JSON_MAX:,} characters.")
    return value


def _computed(raw: Any) -> Any:
    raise CellError("This column is computed; its cells cannot be edited.")


def _unknown(column_type: str) -> Callable[[Any], Any]:
    def refuse(raw: Any) -> Any:
        raise CellError(f"Unknown column type {column_type!r}.")

    return refuse


_PLAIN_PARSERS: dict[str, Callable[[Any], Any]] = {
    "date": _date,
    "datetime": _datetime,
    "checkbox": _checkbox,
    "email": _email,
    "url": _url,
    "phone": _phone,
    "domain": _domain,
    "json": _json,
    "enrichment": _json,
}
_NUMBER_TYPES = frozenset({"number", "currency", "percent"})


def _typed(column_type: str, config: dict[str, Any]) -> Callable[[Any], Any]:
    """The parser of a non-blank value of ``column_type``."""
    if column_type in ("text", "ai"):
        return lambda raw: _text(raw, TEXT_MAX)
    if column_type == "long_text":
        return lambda raw: _text(raw, LONG_TEXT_MAX)
    if column_type == "number":
        # What a formatted number column shows reads back as its number: "1,234.50 USD", "12%".
        return lambda raw: _number(raw, strip="%" + _CURRENCY_SIGNS, codes=CURRENCY_CODES)
    if column_type == "currency":
        codes = (*CURRENCY_CODES, str((config or {}).get("currency", "USD")).upper())
        return lambda raw: _number(raw, strip=_CURRENCY_SIGNS, codes=codes)
    if column_type == "percent":
        return lambda raw: _number(raw, strip="%")
    if column_type == "single_select":
        options = select_options(config)
        return lambda raw: _option(raw, options)
    if column_type == "multi_select":
        options = select_options(config)
        return lambda raw: _multi(raw, options) or None
    return _PLAIN_PARSERS.get(column_type) or _unknown(column_type)


def cell_parser(column_type: str, config: dict[str, Any]) -> Callable[[Any], Any]:
    """``parse_cell`` for one column, resolved once: call it on each of the column's raw values.

    Writers of many rows take one per column rather than dispatching on the type for every cell;
    the commonest values (a short clean string, an integer) take a shorter path with the same result.
    """
    if column_type in COMPUTED_TYPES:
        return _computed
    typed = _typed(column_type, config)
    text_limit = TEXT_MAX if column_type in ("text", "ai") else None
    numeric = column_type in _NUMBER_TYPES

    def parse(raw: Any) -> Any:
        kind = type(raw)
        if kind is str:
            if text_limit is not None and raw and len(raw) <= text_limit and not raw.isspace():
                check_characters(raw)
                return raw
        elif kind is int and numeric and -NUMBER_MAX_ABS < raw < NUMBER_MAX_ABS:
            return Decimal(raw)
        if _is_blank(raw) or (column_type == "multi_select" and raw == []):
            return None
        return typed(raw)

    return parse


def parse_cell(column_type: str, config: dict[str, Any], raw: Any) -> Any:
    """Return the stored value of ``raw`` for a column of ``column_type``, or raise CellError."""
    if column_type in COMPUTED_TYPES:
        _computed(raw)
    if _is_blank(raw) or (column_type == "multi_select" and raw == []):
        return None
    return _typed(column_type, config)(raw)
