"""Setting up enrichment columns: check a setup against the provider registry and the table, then save it.

A column's configuration (``EnrichmentConfig`` in ``Column.config``) is only ever written here, by the
setup form and the API alike, after every reference in it was checked: the operations exist and each
waterfall step delivers the target field, the mapped inputs cover what each step needs, the columns
named exist in this table and can hold what is written into them, and the run condition is a valid
filter of the table. Output columns the user asks for are created in the same transaction, through
the grid's own column service (so they are undoable and typed like any other column).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from morket.core.audit import record_audit
from morket.core.errors import NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.enrichment.config import EnrichmentConfig, OutputMapping, Step, read_config
from morket.enrichment.schemas import ColumnSetup
from morket.extensions import db
from morket.providers.base import InputSpec, Operation
from morket.tables import column_service, service
from morket.tables.filters import validate_filters
from morket.tables.models import Column, Table
from morket.tables.undo import UndoConflict, push_undo, register_undo_kind

# Columns whose cells are computed: never an input of our own outputs' loop, never an output target.
_COMPUTED = frozenset({"formula", "enrichment", "ai"})
# The generic HTTP step: its inputs and fields are named by the step's own options.
HTTP_OPERATION = "http.request"
# The undo step of a changed setup; "column." so that the grid reloads its header on undo and redo.
UNDO_KIND = "column.enrichment_setup"
# Column types a generic HTTP step may give the columns its fields go into.
OUTPUT_TYPES = ("text", "number", "email", "url", "phone", "domain", "date", "checkbox", "json")


def _registry():  # the registry module; imported late so the package loads without providers
    from morket.providers import registry

    return registry


def operations() -> list[Operation]:
    """Every operation the registry offers, for the setup form's pickers."""
    return sorted(_registry().all_operations(), key=lambda op: op.key)


def operation(key: str) -> Operation:
    """Return the operation ``key`` or raise ValidationFailed naming it."""
    try:
        return _registry().get_operation(key)
    except (KeyError, LookupError, ValueError):
        raise ValidationFailed(f"Unknown provider operation “{key}”.", fields={"steps": [f"unknown: {key}"]}) from None


def enrichment_columns(table: Table) -> list[Column]:
    """The table's live enrichment columns, in display order."""
    return [c for c in table.live_columns if c.type == "enrichment"]


def get_enrichment_column_or_404(workspace: Workspace, table: Table, column_id: int) -> Column:
    """Return the table's live enrichment column ``column_id`` or raise NotFound."""
    service.check_owned(workspace, table)
    column = column_service.get_column_or_404(table, column_id)
    if column.type != "enrichment":
        raise NotFound("That column is not an enrichment column.")
    return column


def column_config(column: Column) -> EnrichmentConfig | None:
    """The column's parsed configuration, or None when it is not (or no longer) a valid one."""
    try:
        return read_config(column.config)
    except ValueError:
        return None


def has_auto_run(table: Table) -> bool:
    """Whether any enrichment column of the table runs on new and changed rows (cheap: no query)."""
    return any(c.type == "enrichment" and (c.config or {}).get("auto_run") for c in table.live_columns)


def _fail(message: str, field: str) -> ValidationFailed:
    return ValidationFailed(message, fields={field: [message]})


@dataclass(frozen=True)
class StepShape:
    """What one configured step reads and delivers: the operation's own, or what its options name."""

    op: Operation
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    # Column types the step names for its fields (the generic HTTP step's ``types`` option).
    types: tuple[tuple[str, str], ...] = ()


def step_shape(step: Step) -> StepShape:
    """The inputs and fields of ``step``; the generic HTTP step takes them from its templates and outputs."""
    op = operation(step.operation)
    if op.key != HTTP_OPERATION:
        return StepShape(op, op.inputs, op.output_names)
    from morket.providers import http_request

    try:
        http_request.check_options(step.options)
    except http_request.OptionsError as exc:
        raise _fail(f"{op.label}: {exc}.", "steps") from exc
    names = http_request.template_inputs(step.options)
    inputs = tuple(InputSpec(name, name.replace("_", " ").capitalize()) for name in names)
    outputs = tuple(http_request.output_names(step.options))
    types = step.options.get("types") or {}
    if not isinstance(types, dict) or any(
        field not in outputs or kind not in OUTPUT_TYPES for field, kind in types.items()
    ):
        raise _fail(
            f"{op.label}: each output type names a field of the step and one of {', '.join(OUTPUT_TYPES)}.", "steps"
        )
    return StepShape(op, inputs, outputs, tuple(types.items()))


def _check_steps(setup: ColumnSetup) -> list[StepShape]:
    shapes = [step_shape(step) for step in setup.steps]
    for shape in shapes:
        if setup.target not in shape.outputs:
            raise _fail(f"{shape.op.label} does not deliver the field “{setup.target}”.", "target")
    keys = [s.op.key for s in shapes if s.op.key != HTTP_OPERATION]
    if len(set(keys)) != len(keys):
        raise _fail("Each provider operation appears once in a waterfall.", "steps")
    return shapes


def _check_inputs(table: Table, setup: ColumnSetup, ops: Sequence[StepShape], self_id: int | None) -> None:
    live = {c.id: c for c in table.live_columns}
    known = {spec.name for op in ops for spec in op.inputs}
    for name, column_id in setup.inputs.items():
        if name not in known:
            raise _fail(f"No step of this waterfall reads an input named “{name}”.", "inputs")
        column = live.get(column_id)
        if column is None:
            raise _fail(f"The input “{name}” names a column that is not in this table.", "inputs")
        if column_id == self_id:
            raise _fail("An enrichment column cannot read its own cells.", "inputs")
    for name in setup.derive:
        if name not in setup.inputs:
            raise _fail(f"The input “{name}” is derived from no column; map it to one first.", "derive")
    mapped = set(setup.inputs)
    for shape in ops:
        op = shape.op
        missing = [spec.label for spec in shape.inputs if spec.required and spec.name not in mapped]
        if missing:
            raise _fail(f"{op.label} needs a column for: {', '.join(missing)}.", "inputs")
        if op.any_of and not mapped & set(op.any_of):
            names = ", ".join(spec.label for spec in shape.inputs if spec.name in op.any_of)
            raise _fail(f"{op.label} needs at least one of: {names}.", "inputs")


def _check_validation(setup: ColumnSetup) -> None:
    check = setup.validation
    if check is None:
        return
    op = operation(check.operation)
    if not op.validates:
        raise _fail(f"{op.label} cannot validate values; pick a verifier.", "validation")
    if check.input not in {spec.name for spec in op.inputs}:
        raise _fail(f"{op.label} has no input named “{check.input}”.", "validation")
    if check.field not in op.output_names:
        raise _fail(f"{op.label} has no field named “{check.field}”.", "validation")


def _check_outputs(table: Table, setup: ColumnSetup, ops: Sequence[StepShape], self_id: int | None) -> None:
    live = {c.id: c for c in table.live_columns}
    delivered = {name for shape in ops for name in shape.outputs}
    targets: set[Any] = set()
    for out in setup.outputs:
        if out.field not in delivered:
            raise _fail(f"No step of this waterfall delivers the field “{out.field}”.", "outputs")
        if out.column_id is not None:
            column = live.get(out.column_id)
            if column is None:
                raise _fail(f"The output “{out.field}” names a column that is not in this table.", "outputs")
            if out.column_id == self_id or column.type in _COMPUTED:
                raise _fail(f"“{column.name}” is computed; write “{out.field}” into another column.", "outputs")
            key: Any = out.column_id
        else:
            key = (out.new_column or "").strip().casefold()
            if any(c.name.casefold() == key for c in live.values()):
                raise _fail(f"There is already a column named “{out.new_column}”.", "outputs")
        if key in targets:
            raise _fail("Two outputs write into the same column.", "outputs")
        targets.add(key)


def _check_condition(table: Table, setup: ColumnSetup) -> dict[str, Any] | None:
    if not setup.condition:
        return None
    types = {c.id: c.type for c in table.live_columns}
    configs = {c.id: c.config for c in table.live_columns}
    try:
        return validate_filters(setup.condition, types, configs) or None
    except ValidationFailed as exc:
        raise _fail(f"Run condition: {exc.message}", "condition") from exc


def check_setup(table: Table, setup: ColumnSetup, *, column: Column | None = None) -> dict[str, Any] | None:
    """Check ``setup`` against the registry and ``table``; return the cleaned run condition.

    Raises ValidationFailed naming the first problem; nothing is written.
    """
    self_id = column.id if column is not None else None
    ops = _check_steps(setup)
    _check_inputs(table, setup, ops, self_id)
    _check_validation(setup)
    _check_outputs(table, setup, ops, self_id)
    return _check_condition(table, setup)


def _field_type(ops: Sequence[StepShape], field: str) -> str:
    for shape in ops:
        named = dict(shape.types).get(field)
        if named:
            return named
        for spec in shape.op.outputs:
            if spec.name == field:
                return spec.column_type
    # Fields a generic HTTP step names in its options hold whatever the API answers.
    return "text"


def _add_column(workspace: Workspace, actor: Actor | None, table: Table, name: str, column_type: str) -> Column:
    """Add a column; a person's change is undoable, an API key's (no person) is not."""
    if actor is None:
        return service.add_column(workspace, actor, table, name, column_type)
    return column_service.add_table_column(workspace, actor, table, name, column_type)[0]


def _build_config(
    workspace: Workspace,
    actor: Actor | None,
    table: Table,
    setup: ColumnSetup,
    condition: dict[str, Any] | None,
) -> dict[str, Any]:
    """Create the new output columns and return the configuration to store."""
    ops = [step_shape(step) for step in setup.steps]
    mappings: list[OutputMapping] = []
    for out in setup.outputs:
        column_id = out.column_id
        if column_id is None:
            column_id = _add_column(
                workspace, actor, table, out.new_column or out.field, _field_type(ops, out.field)
            ).id
        mappings.append(OutputMapping(field=out.field, column_id=column_id))
    config = EnrichmentConfig(
        steps=setup.steps,
        target=setup.target,
        inputs=dict(setup.inputs),
        derive=dict(setup.derive),
        outputs=mappings,
        validation=setup.validation,
        condition=condition,
        auto_run=setup.auto_run,
        overwrite=setup.overwrite,
    )
    return config.model_dump(mode="json")


def create_enrichment_column(workspace: Workspace, actor: Actor | None, table: Table, setup: ColumnSetup) -> Column:
    """Add an enrichment column (and the new output columns it writes into) at the end of the table."""
    service.check_owned(workspace, table)
    condition = check_setup(table, setup)
    # The enrichment column comes first so that it sits left of the columns it fills.
    column = _add_column(workspace, actor, table, setup.name, "enrichment")
    column.config = _build_config(workspace, actor, table, setup, condition)
    db.session.flush()
    record_audit(workspace, actor, "enrichment.column_created", f"column:{column.id}", table_id=table.id)
    return column


def update_enrichment_column(
    workspace: Workspace, actor: Actor | None, table: Table, column_id: int, setup: ColumnSetup
) -> Column:
    """Replace an enrichment column's setup (name included); cells already filled are kept.

    A person's change is one undo step (name and setup together); new output columns it adds are
    steps of their own beneath it, so a first undo restores the setup and a second removes them.
    """
    column = get_enrichment_column_or_404(workspace, table, column_id)
    condition = check_setup(table, setup, column=column)
    before_name, before_config = column.name, dict(column.config or {})
    if setup.name.strip() != column.name:
        column_service.rename_table_column(workspace, actor, table, column.id, setup.name, record=False)
    column.config = _build_config(workspace, actor, table, setup, condition)
    # Views filtered on this column's state or value reorder on their next read.
    service.mark_views_stale(workspace, table, {column.id})
    db.session.flush()
    if actor is not None and (column.name, column.config) != (before_name, before_config):
        push_undo(
            workspace,
            actor,
            table,
            UNDO_KIND,
            {"column_id": column.id, "name": column.name, "config": column.config, "expect": before_config},
            {"column_id": column.id, "name": before_name, "config": before_config, "expect": column.config},
        )
    record_audit(workspace, actor, "enrichment.column_updated", f"column:{column.id}", table_id=table.id)
    return column


def _undo_setup(workspace: Workspace, actor: Actor, table: Table, payload: dict[str, Any]) -> None:
    """Put back the setup (and name) a step names, unless someone changed the setup since."""
    column = next((c for c in table.live_columns if c.id == payload["column_id"]), None)
    if column is None or column.type != "enrichment":
        raise UndoConflict("That enrichment column no longer exists.")
    if (column.config or {}) != payload["expect"]:
        raise UndoConflict("Someone changed that column's enrichment setup since; it keeps theirs.")
    try:
        config = read_config(payload["config"])
    except ValueError:
        config = None  # a setup that was already unreadable comes back as it was
    live = {c.id for c in table.live_columns}
    named = set(config.inputs.values()) | {out.column_id for out in config.outputs} if config else set()
    if not named <= live:
        raise UndoConflict("A column that setup reads or fills was deleted since; the column keeps its setup.")
    if column.name != payload["name"]:
        column_service.rename_table_column(workspace, actor, table, column.id, payload["name"], record=False)
    column.config = payload["config"]
    service.mark_views_stale(workspace, table, {column.id})
    db.session.flush()
    record_audit(workspace, actor, "enrichment.column_updated", f"column:{column.id}", table_id=table.id, undo=True)


register_undo_kind(UNDO_KIND, _undo_setup, label="the enrichment setup change")


def setup_of(column: Column) -> dict[str, Any]:
    """The column's configuration as setup fields (for the edit form and the API)."""
    config = column_config(column)
    if config is None:
        return {"name": column.name}
    return {"name": column.name, **config.model_dump(mode="json")}
