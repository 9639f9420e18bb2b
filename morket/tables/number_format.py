"""How a number column shows its numbers: decimals, thousands separators, plain, percent or currency.

A column's format lives in its config (``Column.config``) next to its other settings, checked on
every write by ``column_configs``:

- ``decimals``: 0 to ``MAX_DECIMALS`` digits after the point, or absent for "auto" (as many as the
  value has; a currency shows two);
- ``thousands``: ``false`` to show 1234567 instead of 1,234,567 (absent means grouped);
- ``style``: ``plain``, ``percent`` or ``currency``, for number columns and number formulas (a
  percent or currency column has its style by its type);
- ``currency``: the code a currency shows after the amount ("1,234.50 USD").

A percent shows the stored number followed by ``%`` (12 is "12%"), as percent columns always did,
so that what a user reads, copies or pastes back is the same number. Stored values never change:
the editor, CSV export and the API read the raw number.

``number_texts`` builds, once per column, the function the grid's window calls once per cell; it
takes plain digits apart by slicing when it can (several times cheaper than Decimal formatting,
with the same output) and falls back to Decimal formatting for signs, exponents and rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_DECIMALS = 10
# What the format menu offers: "auto" and 0 to 6 (the API may fix up to MAX_DECIMALS).
MENU_DECIMALS = 6
STYLES = ("plain", "percent", "currency")
# The currencies a number column's format offers; a currency column keeps any three-letter code.
CURRENCY_CODES = ("USD", "EUR", "GBP", "CAD", "AUD", "CHF", "JPY", "INR", "SEK", "SGD")
NUMERIC_TYPES = frozenset({"number", "currency", "percent"})
# The config keys that make up a format (the rest of a column's config is its other settings).
FORMAT_KEYS = ("decimals", "thousands", "style", "currency")

Texts = Callable[[Decimal], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class NumberFormat:
    """A column's number format, read leniently from its stored config (writes are checked)."""

    decimals: int | None = None
    thousands: bool = True
    style: str = "plain"
    currency: str = "USD"

    @property
    def suffix(self) -> str:
        """What follows every shown number: ``%``, `` USD`` or nothing."""
        if self.style == "percent":
            return "%"
        if self.style == "currency":
            return f" {self.currency}"
        return ""

    @property
    def places(self) -> int | None:
        """The fixed decimals shown: the column's, two for a currency on auto, else None (as the value has)."""
        if self.decimals is None and self.style == "currency":
            return 2
        return self.decimals


def format_json(fmt: NumberFormat) -> dict[str, Any]:
    """The format as the page's script applies it to sums and examples (decimals None: as the value has)."""
    return {"decimals": fmt.places, "thousands": fmt.thousands, "suffix": fmt.suffix}


def has_number_format(column_type: str, config: Mapping[str, Any] | None) -> bool:
    """Whether a column of this type and config shows numbers (number, percent, currency, a number formula)."""
    return column_type in NUMERIC_TYPES or (column_type == "formula" and (config or {}).get("result_type") == "number")


def carried_format(from_type: str, from_config: Mapping[str, Any] | None, to_type: str) -> dict[str, Any]:
    """The format keys a column keeps when its type changes from ``from_type`` to ``to_type``.

    Between number types the decimals and thousands separators still apply; a number column shows
    a former currency or percent column's style, and a currency column keeps a currency code it had.
    Any other change starts from the new type's defaults.
    """
    if to_type not in NUMERIC_TYPES or not has_number_format(from_type, from_config):
        return {}
    config = from_config or {}
    carried = {k: config[k] for k in ("decimals", "thousands") if k in config}
    fmt = format_of(from_type, config)
    if to_type == "number" and fmt.style != "plain":
        carried["style"] = fmt.style
        if fmt.style == "currency":
            carried["currency"] = fmt.currency
    elif to_type == "currency" and fmt.style == "currency":
        carried["currency"] = fmt.currency
    return carried


def format_of(column_type: str, config: Mapping[str, Any] | None) -> NumberFormat:
    """Return the number format a column's config asks for, defaults where it says nothing."""
    config = config or {}
    places = config.get("decimals")
    decimals = places if type(places) is int and 0 <= places <= MAX_DECIMALS else None
    thousands = config.get("thousands") is not False
    if column_type in ("percent", "currency"):
        style = column_type
    else:
        style = config.get("style") if config.get("style") in STYLES else "plain"
    code = config.get("currency")
    currency = code if isinstance(code, str) and len(code) == 3 and code.isalpha() else "USD"
    return NumberFormat(decimals, thousands, style, currency.upper())


# --- the texts of one number -----------------------------------------------------------------------


def _plain_digits(value: Decimal) -> tuple[str, str] | None:
    """The whole and fractional digits of a number that prints as plain digits (no sign, no
    exponent, at most 28 digits: the general path's normalize() rounds longer numbers), else None."""
    whole, dot, fraction = str(value).partition(".")
    if whole.isdigit() and (not dot or fraction.isdigit()) and len(whole) + len(fraction) <= 28:
        return whole, fraction
    return None


def grouped(digits: str) -> str:
    """``f"{int(digits):,}"`` for a string of digits, by slicing when it is short (most numbers)."""
    size = len(digits)
    if size <= 3:
        return digits if size == 1 or digits[0] != "0" else f"{int(digits):,}"
    if size <= 6 and digits[0] != "0":
        return f"{digits[:-3]},{digits[-3:]}"
    return f"{int(digits):,}"


def _raw_general(value: Decimal) -> str:
    raw = format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    return raw.rstrip("0").rstrip(".") if "." in raw else raw


def _unsigned_zero(shown: str) -> str:
    """ "-0.00" is shown as "0.00": a value that rounds to zero has no sign."""
    if shown.startswith("-") and not any(ch in "123456789" for ch in shown):
        return shown[1:]
    return shown


def auto_texts(value: Decimal) -> tuple[str, str]:
    """``(raw, shown)``: the editor's text and the grouped digits, as many decimals as the value has.

    Not a number or infinite (a formula's text, PostgreSQL's NaN) shows as an empty cell.
    """
    digits = _plain_digits(value)
    if digits is None:
        if not value.is_finite():
            return "", ""
        if value.is_zero():
            value = value.copy_abs()
        if value == value.to_integral_value():
            return _raw_general(value), f"{value:,f}"
        return _raw_general(value), f"{value.normalize():,f}"
    whole, fraction = digits
    kept = fraction.rstrip("0")
    if not kept:
        return whole, f"{grouped(whole)}.{fraction}" if fraction else grouped(whole)
    return f"{whole}.{kept}", f"{grouped(whole)}.{kept}"


def raw_text(value: Decimal) -> str:
    """The editor's text of a number: plain digits, no exponent, no trailing zeros."""
    return auto_texts(value)[0]


def _fixed(places: int) -> Texts:
    """``(raw, shown)`` with exactly ``places`` decimals (rounded half to even), grouped."""

    def fixed(value: Decimal) -> tuple[str, str]:
        digits = _plain_digits(value)
        if digits is not None and len(digits[1]) <= places:
            # Nothing to round: pad the digits (most stored amounts).
            whole, fraction = digits
            kept = fraction.rstrip("0")
            raw = f"{whole}.{kept}" if kept else whole
            return raw, f"{grouped(whole)}.{fraction:0<{places}}" if places else grouped(whole)
        if not value.is_finite():
            return "", ""
        return raw_text(value), _unsigned_zero(f"{value:,.{places}f}")

    return fixed


def number_texts(fmt: NumberFormat) -> Texts:
    """Return the function from a stored number to ``(raw, shown)`` for this format (without its suffix)."""
    places = fmt.places
    texts = auto_texts if places is None else _fixed(places)
    if fmt.thousands:
        return texts

    def ungrouped(value: Decimal) -> tuple[str, str]:
        raw, shown = texts(value)
        return raw, shown.replace(",", "")

    return ungrouped


def as_decimal(value: Any) -> Decimal | None:
    """A stored or computed number as a Decimal (None for empty, booleans and what is not a number)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except (InvalidOperation, ValueError):
            return None
    return None


def format_number(value: Any, fmt: NumberFormat) -> str:
    """Return ``value`` as the grid shows it in this format; empty for None, NaN and infinities."""
    number = as_decimal(value)
    if number is None or not number.is_finite():
        return ""
    shown = number_texts(fmt)(number)[1]
    return f"{shown}{fmt.suffix}" if shown else ""
