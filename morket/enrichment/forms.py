"""The enrichment column setup form: read its fields into a ``ColumnSetup`` and describe it for the template.

The form has a fixed set of fields so that it works without JavaScript: up to five waterfall steps
(``step_1`` … ``step_5``), one column picker per provider input (``in_<input>``), one output picker
per delivered field (``out_<field>``: blank, ``new`` or a column id, with ``outname_<field>`` for a
new column's name), a validation step, a one-line run condition and two switches. Changing a step
re-renders the form (htmx posts it with ``refresh``) so that only the inputs and fields of the
chosen steps are offered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from werkzeug.datastructures import MultiDict

from morket.core.errors import ValidationFailed
from morket.enrichment import mapping
from morket.enrichment.config import MAX_STEPS
from morket.enrichment.schemas import ColumnSetup
from morket.providers import http_request
from morket.providers.base import Operation
from morket.tables.models import Column, Table

COMPUTED = frozenset({"formula", "enrichment", "ai"})
HTTP_OPERATION = "http.request"
CONDITION_OPERATORS = {
    "is_not_empty": "is not empty",
    "is_empty": "is empty",
    "equals": "is",
    "not_equals": "is not",
    "contains": "contains",
}
# Starting points offered on the setup page: steps, target and validation of a common waterfall.
PRESETS: dict[str, dict[str, Any]] = {
    "email_waterfall": {
        "label": "Work email waterfall (Hunter, then Apollo, verified by Hunter)",
        "name": "Work email",
        "steps": ["hunter.email_finder", "apollo.people_match"],
        "target": "email",
        "validation": "hunter.email_verifier",
    },
    "company": {
        "label": "Company profile (Apollo, then Clearbit)",
        "name": "Company",
        "steps": ["apollo.organization_enrich", "clearbit.company"],
        "target": "name",
        "validation": "",
    },
}


def _norm(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


@dataclass
class SetupForm:
    """What the setup template shows: the chosen values and the choices that follow from them."""

    values: dict[str, str]
    operations: list[Operation]
    chosen: list[Operation]
    inputs: list[tuple[str, str]]  # (input name, label) of the chosen steps
    input_choices: dict[str, list[tuple[str, str]]]  # input name -> (value, label): columns and derived parts
    targets: list[tuple[str, str]]  # fields every chosen step delivers
    fields: list[tuple[str, str, str]]  # (field, label, column type) any chosen step delivers
    validators: list[Operation]
    input_columns: list[Column]
    output_columns: list[Column]
    condition_columns: list[Column]
    presets: dict[str, dict[str, Any]] = field(default_factory=lambda: PRESETS)
    error: str | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    def value(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)


def input_value(resolved: mapping.ResolvedInput) -> str:
    """The form value of a resolved input: "12" (column 12) or "12:first_name" (a part of it), or blank."""
    if resolved.column_id is None:
        return ""
    return f"{resolved.column_id}:{resolved.derive}" if resolved.derive else str(resolved.column_id)


def input_choices(
    name: str, kind: str, columns: list[Column], roles: dict[int, str], current: str = ""
) -> list[tuple[str, str]]:
    """What can feed input ``name``: every column, and the parts of columns it can be derived from."""
    choices = [(str(c.id), c.name) for c in columns]
    wanted = mapping.role_of_input(name, kind)
    for source_role, derivation in mapping.DERIVED_FROM.get(wanted or "", ()):
        for c in columns:
            value = f"{c.id}:{derivation}"
            if roles.get(c.id) == source_role or value == current:
                choices.append((value, f"{mapping.DERIVATION_LABELS[derivation]} {c.name}"))
    return choices


def _step_input_names(steps: list[dict[str, Any]]) -> list[str]:
    """The input names the saved steps read (an unknown operation reads none)."""
    from morket.providers import registry

    names: list[str] = []
    for step in steps:
        key = step.get("operation", "")
        if key == HTTP_OPERATION:
            names += http_request.template_inputs(step.get("options") or {})
            continue
        try:
            names += [spec.name for spec in registry.get_operation(key).inputs]
        except (KeyError, LookupError, ValueError):
            continue
    return names


def values_from_column(column: Column, setup: dict[str, Any]) -> dict[str, str]:
    """Form values of a saved column (the edit form starts from these)."""
    values: dict[str, str] = {"name": column.name, "target": setup.get("target", "")}
    for i, step in enumerate(setup.get("steps", []), start=1):
        values[f"step_{i}"] = step.get("operation", "")
        options = step.get("options") or {}
        if options:
            values[f"http_method_{i}"] = str(options.get("method") or "GET")
            values[f"http_url_{i}"] = str(options.get("url") or "")
            values[f"http_body_{i}"] = str(options.get("body") or "")
            values[f"http_outputs_{i}"] = "\n".join(f"{k} = {v}" for k, v in (options.get("outputs") or {}).items())
            if options.get("types"):
                values[f"http_types_{i}"] = "\n".join(f"{k} = {v}" for k, v in options["types"].items())
            if options.get("headers"):
                values[f"http_headers_{i}"] = "\n".join(f"{k}: {v}" for k, v in options["headers"].items())
    derive = setup.get("derive") or {}
    # An input the saved setup leaves unmapped shows as "none" rather than a guess by meaning, so that
    # opening the editor and saving changes nothing; inputs of a step added while editing are guessed.
    for name in _step_input_names(setup.get("steps") or []):
        values[f"in_{name}"] = ""
    for name, column_id in (setup.get("inputs") or {}).items():
        values[f"in_{name}"] = f"{column_id}:{derive[name]}" if name in derive else str(column_id)
    for out in setup.get("outputs") or []:
        values[f"out_{out['field']}"] = str(out["column_id"])
    validation = setup.get("validation") or None
    if validation:
        values["validation"] = validation.get("operation", "")
        values["accept"] = ", ".join(validation.get("accept") or [])
    conditions = (setup.get("condition") or {}).get("conditions") or []
    if conditions and "column_id" in conditions[0]:
        first = conditions[0]
        values.update(
            cond_col=str(first["column_id"]), cond_op=first.get("operator", ""), cond_value=str(first.get("value", ""))
        )
    if setup.get("auto_run"):
        values["auto_run"] = "1"
    if setup.get("overwrite"):
        values["overwrite"] = "1"
    return values


def values_from_preset(key: str, table: Table, catalogue: dict[str, Operation]) -> dict[str, str]:
    """Form values of a preset, with inputs matched to the table's columns by name."""
    preset = PRESETS.get(key)
    if preset is None:
        return {}
    steps = [s for s in preset["steps"] if s in catalogue]
    values = {"name": preset["name"], "target": preset["target"], "validation": preset["validation"]}
    values.update({f"step_{i}": key for i, key in enumerate(steps, start=1)})
    if preset["validation"]:
        values["accept"] = "valid"
    names = {c.name.casefold() for c in table.live_columns}
    if values["name"].casefold() in names:
        values["name"] = f"{values['name']} (enriched)"
    return values


def describe(
    table: Table,
    catalogue: list[Operation],
    values: MultiDict | dict[str, str],
    *,
    error: str | None = None,
    errors: dict[str, list[str]] | None = None,
    self_id: int | None = None,
    roles: dict[int, str] | None = None,
) -> SetupForm:
    """Build the template's view of the form from the submitted (or saved) values."""
    flat = {k: v for k, v in (values.items() if isinstance(values, dict) else values.items(multi=False))}
    by_key = {op.key: op for op in catalogue}
    picked = [(i, by_key[flat[f"step_{i}"]]) for i in range(1, MAX_STEPS + 1) if flat.get(f"step_{i}") in by_key]
    chosen = [op for _, op in picked]
    inputs: dict[str, str] = {}
    kinds: dict[str, str] = {}
    fields: dict[str, tuple[str, str]] = {}
    outputs_of: list[set[str]] = []
    for i, op in picked:
        if op.key == HTTP_OPERATION:
            options = http_options(flat, i)
            for name in http_request.template_inputs(options):
                inputs.setdefault(name, name.replace("_", " ").capitalize())
            names = http_request.output_names(options)
            for name in names:
                fields.setdefault(name, (name.replace("_", " ").capitalize(), "text"))
            outputs_of.append(set(names))
            continue
        for spec in op.inputs:
            inputs.setdefault(spec.name, spec.label)
            kinds.setdefault(spec.name, spec.kind)
        for spec in op.outputs:
            fields.setdefault(spec.name, (spec.label, spec.column_type))
        outputs_of.append(set(op.output_names))
    common = [name for name in fields if all(name in names for names in outputs_of)]
    live = [c for c in table.live_columns if c.id != self_id]
    plain = [c for c in live if c.type not in COMPUTED]
    # A fresh form maps each input by meaning (mapping.py): a full name feeds first and last names,
    # never a company name.
    if roles is None:
        roles = mapping.detect_roles([mapping.ColumnInfo(c.id, c.name, c.type) for c in plain])
    for resolved in mapping.resolve_inputs([(n, kinds.get(n, "text")) for n in inputs], roles):
        key = f"in_{resolved.input}"
        if key not in flat:
            flat[key] = input_value(resolved)
    choices = {
        name: input_choices(name, kinds.get(name, "text"), live, roles, flat.get(f"in_{name}", "")) for name in inputs
    }
    if "target" not in flat or flat["target"] not in common:
        flat["target"] = common[0] if common else ""
    return SetupForm(
        values=flat,
        operations=catalogue,
        chosen=chosen,
        inputs=list(inputs.items()),
        input_choices=choices,
        targets=[(name, fields[name][0]) for name in common],
        fields=[(name, label, kind) for name, (label, kind) in fields.items()],
        validators=[op for op in catalogue if op.validates],
        input_columns=live,
        output_columns=plain,
        condition_columns=live,
        error=error,
        errors=errors or {},
    )


def http_options(form: MultiDict | dict[str, str], i: int) -> dict[str, Any]:
    """The generic HTTP step ``i``'s options from its fields (outputs: one ``name = $.path`` a line, headers
    one ``Name: value`` a line)."""
    outputs: dict[str, str] = {}
    for line in (form.get(f"http_outputs_{i}") or "").splitlines():
        name, sep, path = line.partition("=")
        if sep and name.strip() and path.strip():
            outputs[name.strip()] = path.strip()
    options: dict[str, Any] = {
        "method": (form.get(f"http_method_{i}") or "GET").strip().upper(),
        "url": (form.get(f"http_url_{i}") or "").strip(),
        "outputs": outputs,
    }
    headers: dict[str, str] = {}
    for line in (form.get(f"http_headers_{i}") or "").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip():
            headers[name.strip()] = value.strip()
    if headers:
        options["headers"] = headers
    types: dict[str, str] = {}
    for line in (form.get(f"http_types_{i}") or "").splitlines():
        name, sep, kind = line.partition("=")
        if sep and name.strip() and kind.strip() and kind.strip() != "text":
            types[name.strip()] = kind.strip()
    if types:
        options["types"] = types
    body = (form.get(f"http_body_{i}") or "").strip()
    if body:
        options["body"] = body
    return options


def _refuse_secrets(options: dict[str, Any]) -> None:
    """A key typed into a header would be stored in the column's setup in clear: ask for ``{{api_key}}``."""
    from morket.enrichment.panel_forms import looks_secret

    for name, value in (options.get("headers") or {}).items():
        if looks_secret(name, value):
            message = (
                f"The header “{name}” holds a key: write {{{{api_key}}}} in its place and store the key as the "
                "workspace's HTTP API key (the enrichment panel does both for you)."
            )
            raise ValidationFailed(message, fields={"http_headers": [message]})


def _int(raw: str, label: str) -> int:
    if not raw.isdigit() or len(raw) > 18:
        raise ValidationFailed(f"{label}: pick a column.", fields={label: ["pick a column"]})
    return int(raw)


def setup_from_form(form: MultiDict, catalogue: list[Operation]) -> ColumnSetup:
    """Read the submitted form into a ColumnSetup; pydantic's complaints become one ValidationFailed."""
    by_key = {op.key: op for op in catalogue}
    picked = [(i, form.get(f"step_{i}", "").strip()) for i in range(1, MAX_STEPS + 1)]
    picked = [(i, key) for i, key in picked if key]
    if not picked:
        raise ValidationFailed("Pick at least one provider step.", fields={"steps": ["pick a provider"]})
    step_models: list[dict[str, Any]] = []
    wanted_inputs: set[str] = set()
    delivered: set[str] = set()
    for i, key in picked:
        if key == HTTP_OPERATION:
            options = http_options(form, i)
            _refuse_secrets(options)
            step_models.append({"operation": key, "options": options})
            wanted_inputs |= set(http_request.template_inputs(options))
            delivered |= set(http_request.output_names(options))
            continue
        step_models.append({"operation": key})
        if key in by_key:
            wanted_inputs |= {spec.name for spec in by_key[key].inputs}
            delivered |= set(by_key[key].output_names)
    inputs: dict[str, int] = {}
    derive: dict[str, str] = {}
    for name in sorted(wanted_inputs):
        raw = form.get(f"in_{name}", "").strip()
        if not raw:
            continue
        # "12" feeds the input with column 12's cells, "12:first_name" with a part of them.
        column_raw, _, derivation = raw.partition(":")
        inputs[name] = _int(column_raw, name)
        if derivation:
            derive[name] = derivation
    outputs: list[dict[str, Any]] = []
    for name in sorted(delivered):
        choice = form.get(f"out_{name}", "").strip()
        if not choice:
            continue
        if choice == "new":
            outputs.append({"field": name, "new_column": form.get(f"outname_{name}", "").strip() or name})
        else:
            outputs.append({"field": name, "column_id": _int(choice, name)})
    validation = None
    verifier = form.get("validation", "").strip()
    if verifier:
        op = by_key.get(verifier)
        accept = [a.strip() for a in form.get("accept", "valid").split(",") if a.strip()] or ["valid"]
        validation = {
            "operation": verifier,
            "input": op.inputs[0].name if op and op.inputs else "email",
            "field": op.outputs[0].name if op and op.outputs else "status",
            "accept": accept,
        }
    condition = None
    cond_col = form.get("cond_col", "").strip()
    if cond_col:
        operator = form.get("cond_op", "is_not_empty")
        cond: dict[str, Any] = {"column_id": _int(cond_col, "condition"), "operator": operator}
        if operator not in ("is_empty", "is_not_empty"):
            cond["value"] = form.get("cond_value", "")
        condition = {"op": "and", "conditions": [cond]}
    payload = {
        "name": form.get("name", ""),
        "steps": step_models,
        "target": form.get("target", "").strip(),
        "inputs": inputs,
        "derive": derive,
        "outputs": outputs,
        "validation": validation,
        "condition": condition,
        "auto_run": form.get("auto_run") == "1",
        "overwrite": form.get("overwrite") == "1",
    }
    try:
        return ColumnSetup.model_validate(payload)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else "form"
            fields.setdefault(name, []).append(error["msg"])
        first = next(iter(fields.items()))
        raise ValidationFailed(f"{first[0].capitalize()}: {first[1][0]}", fields=fields) from None
