"""Column settings (``Column.config``): one validator per column type, used wherever a config is written.

Adding a column (API, pages, table creation, CSV import, enrichment outputs), converting one
(retype) and restoring one (undo) all pass through ``clean_config``, so a column whose settings
would break later reads or writes (a formula without a formula, select options with commas, an
AI column with settings nothing reads) is refused with a 422 naming the problem and never saved.
The enrichment type's setup is checked by ``morket.enrichment.columns.check_setup`` before it is
stored; here its config only has to be an object.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from morket.core.errors import ValidationFailed
from morket.tables.cells import CellError, check_characters
from morket.tables.formula_rows import check_formula
from morket.tables.lookups import clean_lookup
from morket.tables.models import COLUMN_TYPES, Table
from morket.tables.number_format import CURRENCY_CODES, FORMAT_KEYS, MAX_DECIMALS, STYLES

MAX_SELECT_OPTIONS = 500
MAX_FORMULA_CHARS = 2000


def _refuse(message: str, detail: str, field: str = "config") -> ValidationFailed:
    return ValidationFailed(message, fields={field: [detail]})


def _storable(text: str) -> bool:
    try:
        check_characters(text)
    except CellError:
        return False
    return True


def _select(table: Table, config: dict[str, Any], column_id: int | None) -> dict[str, Any]:
    options = config.get("options") or []
    if not isinstance(options, list):
        raise _refuse("Options must be a list.", "options not a list")
    names = [o.get("name") if isinstance(o, dict) else o for o in options]
    names = [n.strip() if isinstance(n, str) else "" for n in names]
    if any(not n or len(n) > 100 or "," in n or not _storable(n) for n in names):
        raise _refuse("Options are 1 to 100 characters, without commas.", "bad option")
    if len({n.casefold() for n in names}) != len(names) or len(names) > MAX_SELECT_OPTIONS:
        raise _refuse(f"Options must be distinct, at most {MAX_SELECT_OPTIONS}.", "bad options")
    return {**config, "options": names}


def _format(config: dict[str, Any], *, style: bool) -> dict[str, Any]:
    """Check a number format's keys (``number_format``): decimals, thousands, and with ``style`` the
    style and its currency; keys left out keep their defaults."""
    places = config.get("decimals")
    if places is not None and (type(places) is not int or not 0 <= places <= MAX_DECIMALS):
        raise _refuse(f"Decimals is a whole number from 0 to {MAX_DECIMALS}.", "bad decimals", "decimals")
    if "thousands" in config and type(config["thousands"]) is not bool:
        raise _refuse("Thousands separator is true or false.", "bad thousands", "thousands")
    if "decimals" in config and places is None:
        config = {k: v for k, v in config.items() if k != "decimals"}
    if not style:
        return config
    chosen = config.get("style", "plain")
    if chosen not in STYLES:
        raise _refuse("Style is plain, percent or currency.", "bad style", "style")
    if chosen == "currency" or "currency" in config:
        code = str(config.get("currency", "USD")).upper()
        if code not in CURRENCY_CODES:
            raise _refuse(f"Currency is one of {', '.join(CURRENCY_CODES)}.", "bad currency", "currency")
        config = {**config, "currency": code}
    return config


def _number(table: Table, config: dict[str, Any], column_id: int | None) -> dict[str, Any]:
    """Number columns may fix their format: decimals, thousands separators, plain, percent or currency."""
    return _format(config, style=True)


def _percent(table: Table, config: dict[str, Any], column_id: int | None) -> dict[str, Any]:
    """Percent columns may fix their decimals and thousands separators (their style is their type)."""
    return _format(config, style=False)


def _currency(table: Table, config: dict[str, Any], column_id: int | None) -> dict[str, Any]:
    code = str(config.get("currency", "USD")).upper()
    if len(code) != 3 or not code.isalpha():
        raise _refuse("Currency is a three-letter code such as USD.", "bad currency", "currency")
    return {**_format(config, style=False), "currency": code}


def _formula(table: Table, config: dict[str, Any], column_id: int | None) -> dict[str, Any]:
    expression = config.get("expression")
    if not isinstance(expression, str) or not expression.strip():
        raise _refuse("A formula column needs a formula (config.expression).", "expression is required")
    expression = expression.strip()
    if len(expression) > MAX_FORMULA_CHARS:
        raise _refuse(f"A formula is at most {MAX_FORMULA_CHARS:,} characters.", "bad formula")
    # Compiled against the table as it is now, so every later row write can compute it.
    result_type = check_formula(table, expression, column_id=column_id)
    # A number formula keeps its format; any other result drops it (nothing would read it).
    shown = {k: v for k, v in config.items() if k in FORMAT_KEYS} if result_type == "number" else {}
    return {"expression": expression, "result_type": result_type, **_format(shown, style=True)}


def _no_settings(table: Table, config: dict[str, Any], column_id: int | None) -> dict[str, Any]:
    if config:
        raise _refuse("AI columns take no settings yet; send no config.", "must be empty")
    return {}


def _any_object(table: Table, config: dict[str, Any], column_id: int | None) -> dict[str, Any]:
    return config


Validator = Callable[[Table, dict[str, Any], int | None], dict[str, Any]]
VALIDATORS: dict[str, Validator] = {
    **dict.fromkeys(COLUMN_TYPES, _any_object),
    "single_select": _select,
    "multi_select": _select,
    "number": _number,
    "percent": _percent,
    "currency": _currency,
    "formula": _formula,
    "lookup": clean_lookup,
    "ai": _no_settings,
}


def clean_config(table: Table, column_type: str, config: Any, *, column_id: int | None = None) -> dict[str, Any]:
    """Return ``config`` checked and normalised for ``column_type`` on ``table``, or raise ValidationFailed.

    ``column_id`` names the column the config belongs to when it already exists (a restore), so
    that a formula may be checked against the rest of the table.
    """
    if config is not None and not isinstance(config, Mapping):
        raise _refuse("Column settings must be an object.", "not an object")
    validator = VALIDATORS.get(column_type)
    if validator is None:
        raise _refuse(f"Unknown column type “{column_type}”.", "unknown type", field="type")
    return validator(table, dict(config or {}), column_id)
