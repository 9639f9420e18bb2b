"""From a posted JSON payload to cells: records selected by a JSON path, each column read by its own.

Pure functions over parsed JSON; nothing here touches the database. Paths are JSONPath as
jsonpath-ng reads it (``$.contact.email``, ``$.tags[0]``, ``$..id``); a plain dotted path of keys
(``contact.email``, the common case) is read by dictionary lookups without the parser, since the
parser costs far more than the lookup on every row of every request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.ext import parse as parse_path

PATH_MAX = 300
MAX_RECORDS = 10_000
_PLAIN = re.compile(r"^(?:\$\.)?([A-Za-z_][A-Za-z0-9_\-]*(?:\.[A-Za-z_][A-Za-z0-9_\-]*)*)$")
_MISSING = object()


class MappingError(ValueError):
    """A payload or a path that cannot be mapped; ``fields`` names where."""

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


@dataclass(frozen=True)
class CompiledPath:
    """A checked path: the keys of a plain dotted path, or jsonpath-ng's parsed expression."""

    text: str
    keys: tuple[str, ...] | None
    expression: JSONPath | None

    def first(self, record: Any) -> Any:
        """Return the first value the path finds in ``record``, or ``_MISSING``."""
        if self.keys is not None:
            value = record
            for key in self.keys:
                if not isinstance(value, Mapping):
                    return _MISSING
                value = value.get(key, _MISSING)
                if value is _MISSING:
                    return _MISSING
            return value
        found = self.expression.find(record)  # type: ignore[union-attr]
        return found[0].value if found else _MISSING

    def all(self, document: Any) -> list[Any]:
        """Return every value the path finds in ``document``."""
        if self.keys is not None:
            value = self.first(document)
            return [] if value is _MISSING else [value]
        return [match.value for match in self.expression.find(document)]  # type: ignore[union-attr]


@lru_cache(maxsize=1024)
def compile_path(text: str) -> CompiledPath:
    """Check and compile a JSON path (cached: sources reuse theirs on every request)."""
    text = text.strip()
    if not text or len(text) > PATH_MAX:
        raise MappingError(f"A JSON path has 1 to {PATH_MAX} characters.")
    plain = _PLAIN.match(text)
    if plain:
        return CompiledPath(text, tuple(plain.group(1).split(".")), None)
    try:
        return CompiledPath(text, None, parse_path(text))
    except Exception as exc:  # noqa: BLE001 - jsonpath-ng raises bare Exceptions besides its own
        raise MappingError(f"“{text[:60]}” is not a JSON path ({str(exc)[:80]}).") from None


def records_of(payload: Any, records_path: str = "") -> list[Any]:
    """Return the records a payload carries: the objects at ``records_path``, else the body itself.

    An object is one record and an array is one record per element; a path that finds an array
    takes its elements.
    """
    if records_path:
        found = compile_path(records_path).all(payload)
        if len(found) == 1 and isinstance(found[0], list):
            found = found[0]
        items = found
    else:
        items = payload if isinstance(payload, list) else [payload]
    if not items:
        raise MappingError(
            "The payload holds no records" + (f" at {records_path}." if records_path else " (an empty array)."),
            {"body": ["no records"]},
        )
    if len(items) > MAX_RECORDS:
        raise MappingError(f"At most {MAX_RECORDS:,} records per request.", {"body": ["too many records"]})
    bad = [i for i, item in enumerate(items) if not isinstance(item, dict)]
    if bad:
        raise MappingError(
            f"Each record must be a JSON object; record {bad[0]} is a {type(items[bad[0]]).__name__}.",
            {f"records[{bad[0]}]": ["not an object"]},
        )
    return items


def to_cell(value: Any) -> Any:
    """What a column receives for a found value: scalars as they are, lists of scalars joined, the rest as JSON."""
    if isinstance(value, list) and all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value):
        return ", ".join(str(v) for v in value)
    return value


def map_records(
    records: list[Any], columns: Mapping[int, CompiledPath], names: Mapping[int, str]
) -> list[dict[int, Any]]:
    """Map every record to {column id: raw value}; a record where no path finds anything is refused."""
    if not columns:
        raise MappingError(
            "This source maps no columns yet: map at least one column, then replay.", {"mapping": ["empty"]}
        )
    rows: list[dict[int, Any]] = []
    empty: list[int] = []
    # Plain dotted paths (the usual mapping) are walked inline; others go through jsonpath-ng.
    compiled = [(column_id, path.keys, path) for column_id, path in columns.items()]
    for index, record in enumerate(records):
        row: dict[int, Any] = {}
        for column_id, keys, path in compiled:
            if keys is None:
                value = path.first(record)
            else:
                value = record
                for key in keys:
                    if not isinstance(value, Mapping):
                        value = _MISSING
                        break
                    value = value.get(key, _MISSING)
                    if value is _MISSING:
                        break
            if value is not _MISSING:
                row[column_id] = to_cell(value) if isinstance(value, list) else value
        if not row:
            empty.append(index)
        rows.append(row)
    if empty:
        paths = ", ".join(f"{names.get(c, c)} ← {p.text}" for c, p in list(columns.items())[:5])
        raise MappingError(
            f"{len(empty)} record{'s' if len(empty) != 1 else ''} matched none of the mapped paths "
            f"(first: record {empty[0]}; mapped: {paths}).",
            {f"records[{i}]": ["no mapped path found a value"] for i in empty[:50]},
        )
    return rows


def sample_keys(sample: Any, records_path: str = "") -> list[str]:
    """The dotted paths of the scalar fields of the sample's first record (for new columns), in order."""
    try:
        first = records_of(sample, records_path)[0]
    except MappingError:
        return []
    keys: list[str] = []

    def walk(value: Any, prefix: str) -> None:
        for key, item in value.items():
            if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", key):
                continue
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(item, dict) and len(keys) < 100:
                walk(item, path)
            elif len(keys) < 100:
                keys.append(path)

    walk(first, "")
    return keys
