"""What an AI column answers: the JSON schema asked of the model, and the check of what came back.

Output types: text, number, boolean, one of a list (``choice``), URL, email, or a JSON object whose
fields go into columns of their own. The schema goes to the endpoint as structured output; the
answer is still checked here against the column's type, because not every endpoint enforces a
schema. An answer that does not fit is an ``OutputError`` with the reason, and its cell becomes an
error showing that reason: never a silent junk value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

OUTPUT_TYPES: dict[str, str] = {
    "text": "Text",
    "number": "Number",
    "boolean": "Yes / no",
    "choice": "One of a list",
    "url": "URL",
    "email": "Email",
    "json": "Several fields (JSON)",
    "research": "Research the web (answer with sources)",
}
FIELD_TYPES = ("text", "number", "boolean", "url", "email")
# The table column type each output type's field is written into.
COLUMN_TYPE_OF = {"text": "text", "number": "number", "boolean": "checkbox", "url": "url", "email": "email"}
MAX_TEXT = 10_000
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class OutputError(Exception):
    """An answer that does not fit the column's output type; ``message`` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _scalar_schema(kind: str, options: Sequence[str] = ()) -> dict[str, Any]:
    if kind == "number":
        return {"type": "number"}
    if kind == "boolean":
        return {"type": "boolean"}
    if kind == "choice":
        return {"type": "string", "enum": list(options)}
    if kind == "url":
        return {"type": "string", "description": "An absolute http or https URL."}
    if kind == "email":
        return {"type": "string", "description": "An email address."}
    return {"type": "string"}


def json_schema(kind: str, options: Sequence[str] = (), fields: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The schema the model is asked to answer in (a JSON object for ``json``, else one value)."""
    if kind == "json":
        return {
            "type": "object",
            "properties": {f["name"]: _scalar_schema(f["type"]) for f in fields},
            "required": [f["name"] for f in fields],
            "additionalProperties": False,
        }
    return _scalar_schema(kind, options)


def _check_scalar(kind: str, value: Any, options: Sequence[str] = (), label: str = "The answer") -> Any:
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            if isinstance(value, str):
                try:
                    value = float(value.strip().replace(",", ""))
                except ValueError:
                    raise OutputError(f"{label} is not a number: {value[:80]!r}.") from None
            else:
                raise OutputError(f"{label} is not a number.")
        if isinstance(value, float) and not math.isfinite(value):
            raise OutputError(f"{label} is not a finite number.")
        return int(value) if isinstance(value, float) and value.is_integer() else value
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
            return value.strip().lower() in ("true", "yes")
        raise OutputError(f"{label} is not yes or no.")
    if not isinstance(value, str):
        raise OutputError(f"{label} is not text.")
    text = value.strip()
    if kind == "choice":
        if text in options:
            return text
        folded = {o.casefold(): o for o in options}
        if text.casefold() in folded:
            return folded[text.casefold()]
        raise OutputError(f"{label} {text[:80]!r} is not one of the options ({', '.join(options)}).")
    if kind == "url":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc or " " in text:
            raise OutputError(f"{label} is not an http(s) URL: {text[:80]!r}.")
        return text
    if kind == "email":
        if not _EMAIL.match(text):
            raise OutputError(f"{label} is not an email address: {text[:80]!r}.")
        return text.lower()
    if not text:
        raise OutputError(f"{label} is empty.")
    return text[:MAX_TEXT]


def check_answer(
    kind: str, value: Any, options: Sequence[str] = (), fields: Sequence[Mapping[str, Any]] = ()
) -> tuple[Any, dict[str, Any]]:
    """(the cell's value, the fields for other columns) of an answer, or OutputError with the reason.

    ``value`` is the parsed answer (structured output), or the raw text when the endpoint gave text.
    """
    if kind == "json":
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise OutputError("The answer is not a JSON object.") from None
        if not isinstance(value, dict):
            raise OutputError("The answer is not a JSON object.")
        checked: dict[str, Any] = {}
        for f in fields:
            if f["name"] not in value or value[f["name"]] is None:
                raise OutputError(f"The answer has no “{f['name']}”.")
            checked[f["name"]] = _check_scalar(f["type"], value[f["name"]], label=f"“{f['name']}”")
        return json.dumps(checked, ensure_ascii=False), checked
    if isinstance(value, dict) and set(value) == {"value"}:
        value = value["value"]
    checked_value = _check_scalar(kind, value, options)
    if kind == "boolean":
        return ("true" if checked_value else "false"), {}
    return str(checked_value), {}


def check_field_name(name: str) -> bool:
    """Whether ``name`` can be a field of a JSON answer (letters, digits, underscores)."""
    return bool(_FIELD_NAME.match(name or ""))
