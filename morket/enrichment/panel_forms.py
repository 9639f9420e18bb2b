"""The drawer's forms on top of the setup form's fields, so both are read by ``forms.setup_from_form``.

Editing a column in the drawer posts the full page's fields (``step_<i>``, ``in_<input>``, ``out_<field>``
…) and moves its steps with buttons (``step_action``: ``up:2``, ``down:2``, ``remove:2``, ``add``), which
renumber the fields of every step here. The HTTP card's drawer form has fields of its own (header
rows, one response path and its type) that ``http_values`` turns into the full page's fields for step
1, so a column saved from either place is checked and stored by the same code. Pure functions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

from morket.core.errors import ValidationFailed
from morket.enrichment import mapping
from morket.enrichment.config import MAX_STEPS
from morket.providers import http_request

# The fields of one step of the setup form, suffixed with the step's number.
STEP_KEYS = ("step", "http_method", "http_url", "http_body", "http_outputs", "http_headers", "http_types")
HEADER_ROWS = 3
MAX_HEADER_ROWS = 10
# Header names whose values are credentials, and values that look like one (long, letters and digits).
_SECRET_NAME = re.compile(r"authorization|api[-_]?key|token|secret|password|auth", re.I)
_SECRET_VALUE = re.compile(r"(?:bearer\s+|basic\s+)?([A-Za-z0-9_\-\.=+/]{20,})", re.I)
MASK = "••••"


def flat(values: Any) -> dict[str, str]:
    """A form (a MultiDict: its first values) or a dict as a plain dict of strings."""
    items = values.items(multi=False) if hasattr(values, "getlist") else values.items()
    return {str(k): str(v) for k, v in items}


def steps_of(values: Mapping[str, str]) -> list[dict[str, str]]:
    """The form's steps in order, each as its fields without the number (blank steps dropped)."""
    found = []
    for i in range(1, MAX_STEPS + 1):
        if (values.get(f"step_{i}") or "").strip():
            found.append({key: values.get(f"{key}_{i}", "") for key in STEP_KEYS})
    return found


def with_steps(values: Mapping[str, str], steps: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """``values`` with its steps replaced by ``steps``, numbered from 1."""
    numbered = re.compile(rf"^(?:{'|'.join(STEP_KEYS)})_\d+$")
    out = {k: v for k, v in values.items() if not numbered.match(k)}
    for i, step in enumerate(steps, start=1):
        out.update({f"{key}_{i}": step.get(key, "") for key in STEP_KEYS if step.get(key)})
    return out


def rearrange(values: Mapping[str, str], action: str, *, operations: Iterable[str]) -> dict[str, str]:
    """Apply a step button: move step n up or down, remove it, or add the operation picked in ``add_step``."""
    steps = steps_of(values)
    verb, _, raw = action.partition(":")
    if verb == "add":
        key = (values.get("add_step") or "").strip()
        if key not in set(operations):
            raise ValidationFailed("Pick a provider to add.", fields={"add_step": ["pick a provider"]})
        if len(steps) >= MAX_STEPS:
            raise ValidationFailed(f"A waterfall has at most {MAX_STEPS} steps.", fields={"steps": ["too many"]})
        if any(s["step"] == key for s in steps) and key != http_request.REQUEST.key:
            raise ValidationFailed("Each provider operation appears once in a waterfall.", fields={"steps": [key]})
        steps.append({"step": key})
        out = with_steps(values, steps)
        out.pop("add_step", None)
        return out
    if verb not in ("up", "down", "remove") or not raw.isdigit() or not 1 <= int(raw) <= len(steps):
        raise ValidationFailed("That step button is out of date; try again.", fields={"steps": ["unknown"]})
    n = int(raw) - 1
    if verb == "remove":
        if len(steps) == 1:
            raise ValidationFailed("A waterfall keeps at least one step.", fields={"steps": ["last step"]})
        steps.pop(n)
    else:
        other = n - 1 if verb == "up" else n + 1
        if 0 <= other < len(steps):
            steps[n], steps[other] = steps[other], steps[n]
    return with_steps(values, steps)


def chosen_inputs(values: Mapping[str, str], live: set[int]) -> dict[str, tuple[int, str | None]]:
    """The inputs the form maps (``in_<input>``: "12" or "12:first_name") to columns of the table."""
    chosen: dict[str, tuple[int, str | None]] = {}
    for key, raw in values.items():
        if not key.startswith("in_") or not raw:
            continue
        column_raw, _, derivation = raw.partition(":")
        if column_raw.isdigit() and int(column_raw) in live and derivation in ("", *mapping.DERIVATIONS):
            chosen[key[3:]] = (int(column_raw), derivation or None)
    return chosen


# --- the HTTP card ------------------------------------------------------------------------------------


def placeholder(column_name: str) -> str:
    """The ``{{name}}`` input a column is inserted as: its header in snake case ("Company domain" → company_domain)."""
    ascii_name = unicodedata.normalize("NFKD", column_name).encode("ascii", "ignore").decode().lower()
    name = re.sub(r"[^0-9a-z]+", "_", ascii_name).strip("_") or "column"
    name = name if name[0].isalpha() else f"c_{name}"
    return "value" if name == http_request.KEY_PLACEHOLDER else name[:60]


def header_rows(values: Mapping[str, str]) -> list[tuple[str, str]]:
    """The header rows of the HTTP form (name, value), blank rows included, at least ``HEADER_ROWS``."""
    raw = values.get("header_rows") or ""
    count = min(max(int(raw) if raw.isdigit() and len(raw) < 4 else 0, HEADER_ROWS), MAX_HEADER_ROWS)
    return [(values.get(f"hdr_name_{k}", ""), values.get(f"hdr_value_{k}", "")) for k in range(1, count + 1)]


def looks_secret(name: str, value: str) -> bool:
    """Whether a header value is a credential: by its header's name, or a long token in it."""
    if not value.strip() or http_request.PLACEHOLDER.fullmatch(value.strip()):
        return False
    if f"{{{{{http_request.KEY_PLACEHOLDER}}}}}" in value.replace(" ", ""):
        return False
    return bool(_SECRET_NAME.search(name)) or bool(_SECRET_VALUE.fullmatch(value.strip()))


def split_secret(value: str) -> tuple[str, str]:
    """A secret header value as (template, secret): "Bearer abc…" → ("Bearer {{api_key}}", "abc…")."""
    found = _SECRET_VALUE.fullmatch(value.strip())
    secret = found.group(1) if found else value.strip()
    prefix = value.strip()[: len(value.strip()) - len(secret)]
    return f"{prefix}{{{{{http_request.KEY_PLACEHOLDER}}}}}", secret


def http_values(form: Mapping[str, str], *, key_template: Mapping[str, str] | None = None) -> dict[str, str]:
    """The HTTP card's drawer form as the full setup page's fields (one HTTP step, its output a new column).

    ``key_template`` replaces the value of secret headers (by name) with their ``{{api_key}}`` template.
    """
    field = (form.get("out_field") or "").strip()
    path = (form.get("out_path") or "").strip()
    kind = (form.get("out_type") or "text").strip()
    headers = []
    for name, value in header_rows(form):
        if name.strip():
            value = (key_template or {}).get(name.strip(), value)
            headers.append(f"{name.strip()}: {value.strip()}")
    values = {
        "name": form.get("name", ""),
        "step_1": http_request.REQUEST.key,
        "http_method_1": form.get("http_method_1", "GET"),
        "http_url_1": form.get("http_url_1", ""),
        "http_body_1": form.get("http_body_1", ""),
        "http_headers_1": "\n".join(headers),
        "target": field,
    }
    if field:
        values["http_outputs_1"] = f"{field} = {path}"
        values[f"out_{field}"] = "new"
        values[f"outname_{field}"] = (form.get("out_column") or "").strip() or field.replace("_", " ").capitalize()
        if kind != "text":
            values["http_types_1"] = f"{field} = {kind}"
    for key, raw in form.items():
        if key.startswith("in_"):
            values[key] = raw
    return values


def masked_headers(form: Mapping[str, str], stored_hint: str | None) -> list[tuple[str, str]]:
    """The headers as the preview shows them: secrets masked (a stored key as ••••<last four>)."""
    shown = []
    for name, value in header_rows(form):
        if not name.strip():
            continue
        if looks_secret(name, value):
            template, _ = split_secret(value)
            value = template.replace(f"{{{{{http_request.KEY_PLACEHOLDER}}}}}", MASK)
        elif f"{{{{{http_request.KEY_PLACEHOLDER}}}}}" in value:
            value = value.replace(f"{{{{{http_request.KEY_PLACEHOLDER}}}}}", MASK + (stored_hint or ""))
        shown.append((name.strip(), value.strip()))
    return shown


# --- an HTTP step of an existing column, edited in the drawer ------------------------------------------
# The editor shows a step's headers and kept fields as rows (``hdr_name_<i>_<k>``, ``hdr_value_<i>_<k>``;
# ``hout_field_<i>_<k>``, ``hout_path_<i>_<k>``, ``hout_type_<i>_<k>``); ``join_step_rows`` turns them back
# into the full page's ``http_headers_<i>``, ``http_outputs_<i>`` and ``http_types_<i>`` before anything
# else reads the form, and ``card_form`` gives one step as the HTTP card's fields for its preview and test.

_ROW_KEY = re.compile(r"^(hdr_name|hdr_value|hout_field|hout_path|hout_type)_(\d+)_(\d+)$")


def _pairs(text: str, sep: str) -> list[tuple[str, str]]:
    found = []
    for line in (text or "").splitlines():
        name, found_sep, value = line.partition(sep)
        if found_sep and name.strip():
            found.append((name.strip(), value.strip()))
    return found


def step_header_rows(step: Mapping[str, str]) -> list[tuple[str, str]]:
    """A step's headers as rows, with blank rows to fill (at least ``HEADER_ROWS``, one blank, at most the cap)."""
    rows = _pairs(step.get("http_headers", ""), ":")
    return (rows + [("", "")] * max(HEADER_ROWS - len(rows), 1))[: max(MAX_HEADER_ROWS, len(rows))]


def step_output_rows(step: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """A step's kept fields as rows (field, JSONPath, column type), and one blank row for another."""
    types = dict(_pairs(step.get("http_types", ""), "="))
    rows = [(name, path, types.get(name, "text")) for name, path in _pairs(step.get("http_outputs", ""), "=")]
    return rows + [("", "", "text")]


def join_step_rows(values: Mapping[str, str]) -> dict[str, str]:
    """``values`` with the editor's header and field rows written as the full page's fields of their step."""
    rows: dict[int, dict[str, dict[int, str]]] = {}
    out: dict[str, str] = {}
    for key, raw in values.items():
        found = _ROW_KEY.match(key)
        if found is None:
            out[key] = raw
            continue
        kind, step, k = found.group(1), int(found.group(2)), int(found.group(3))
        rows.setdefault(step, {}).setdefault(kind, {})[k] = raw
    for i, kinds in rows.items():
        if "hdr_name" in kinds:
            names, given = kinds["hdr_name"], kinds.get("hdr_value", {})
            lines = [f"{names[k].strip()}: {given.get(k, '').strip()}" for k in sorted(names) if names[k].strip()]
            out[f"http_headers_{i}"] = "\n".join(lines)
        if "hout_field" in kinds:
            fields, paths, types = kinds["hout_field"], kinds.get("hout_path", {}), kinds.get("hout_type", {})
            kept = [(fields[k].strip(), paths.get(k, "").strip(), types.get(k, "text")) for k in sorted(fields)]
            kept = [row for row in kept if row[0]]
            out[f"http_outputs_{i}"] = "\n".join(f"{name} = {path}" for name, path, _ in kept)
            out[f"http_types_{i}"] = "\n".join(f"{name} = {kind}" for name, _, kind in kept if kind != "text")
    return out


def card_form(values: Mapping[str, str], i: int) -> dict[str, str]:
    """Step ``i`` of the full page's fields as the HTTP card's fields (its first kept field is the card's)."""
    step = {key: values.get(f"{key}_{i}", "") for key in STEP_KEYS}
    form = {
        "http_method_1": step["http_method"] or "GET",
        "http_url_1": step["http_url"],
        "http_body_1": step["http_body"],
    }
    headers = _pairs(step["http_headers"], ":")
    form["header_rows"] = str(len(headers))
    for k, (name, value) in enumerate(headers, start=1):
        form[f"hdr_name_{k}"], form[f"hdr_value_{k}"] = name, value
    outputs = step_output_rows(step)
    if outputs[0][0]:
        form["out_field"], form["out_path"], form["out_type"] = outputs[0]
    form.update({k: v for k, v in values.items() if k.startswith("in_")})
    return form


def without_step_secrets(values: Mapping[str, str]) -> dict[str, str]:
    """The editor's fields shown back after a test send: a key typed into a step's header is never echoed."""
    out = dict(values)
    for i in range(1, MAX_STEPS + 1):
        headers = _pairs(values.get(f"http_headers_{i}", ""), ":")
        if any(looks_secret(name, value) for name, value in headers):
            kept = [f"{n}: {'' if looks_secret(n, v) else v}" for n, v in headers]
            out[f"http_headers_{i}"] = "\n".join(kept)
    return out
