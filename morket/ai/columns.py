"""AI columns' setup: what a column asks the model, in what form, and where the answer goes.

The setup (``AiSetup``, the same for the page and the API) is checked against the table and saved
as the column's ``Column.config`` (``AiConfig``). The prompt names columns as ``{{Column}}``; each
name is resolved to its column id when the setup is saved, so a run reads cells by id. A JSON answer's
fields each go into a column of their own, created with the column (typed like the field).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from morket.ai import outputs
from morket.ai import prompt as prompts
from morket.core.audit import record_audit
from morket.core.errors import NotFound, ValidationFailed
from morket.core.types import Actor, Workspace
from morket.extensions import db
from morket.tables import column_service, service
from morket.tables.models import Column, Table

COLUMN_TYPE = "ai"
MAX_OPTIONS = 50
MAX_FIELDS = 20
DEFAULT_MAX_TOKENS = 256
RESEARCH_STEPS = 6
RESEARCH_PAGES = 3
# Columns whose cells are computed: not an input of a prompt.
_COMPUTED = frozenset({"formula", "enrichment", "ai"})


class AiField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    type: Literal["text", "number", "boolean", "url", "email"] = "text"
    column_id: int | None = Field(default=None, ge=1, le=2**63 - 1)


class AiSetup(BaseModel):
    """An AI column as a person or an API client describes it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=120)
    prompt: str = Field(min_length=1, max_length=prompts.MAX_PROMPT_CHARS)
    system: str = Field(default="", max_length=prompts.MAX_SYSTEM_CHARS)
    endpoint_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    model: str | None = Field(default=None, max_length=120)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)
    max_tokens: int = Field(default=DEFAULT_MAX_TOKENS, ge=16, le=4096)
    output_type: Literal["text", "number", "boolean", "choice", "url", "email", "json", "research"] = "text"
    options: list[str] = Field(default_factory=list, max_length=200)
    fields: list[AiField] = Field(default_factory=list, max_length=100)
    # A research column's bounds per row: model steps and pages fetched.
    research_steps: int = Field(default=RESEARCH_STEPS, ge=2, le=12)
    research_pages: int = Field(default=RESEARCH_PAGES, ge=1, le=6)

    @field_validator("options")
    @classmethod
    def _clean_options(cls, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for option in value:
            option = str(option).strip()
            if option and option not in cleaned:
                cleaned.append(option[:200])
        return cleaned


class AiConfig(BaseModel):
    """What an AI column keeps in ``Column.config`` (and a run copies when it starts)."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["ai"] = "ai"
    prompt: str
    system: str = ""
    inputs: dict[str, int]  # name as written in the prompt -> column id
    endpoint_id: int | None = None
    model: str | None = None
    temperature: float = 0.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    output_type: str = "text"
    options: list[str] = Field(default_factory=list)
    fields: list[AiField] = Field(default_factory=list)
    research_steps: int = RESEARCH_STEPS
    research_pages: int = RESEARCH_PAGES

    @property
    def research(self) -> bool:
        return self.output_type == "research"

    def schema(self) -> dict[str, Any]:
        return outputs.json_schema(self.output_type, self.options, [f.model_dump() for f in self.fields])


def read_config(raw: Any) -> AiConfig:
    """The stored configuration, or ValidationFailed when it cannot be used."""
    try:
        return AiConfig.model_validate(raw or {})
    except ValidationError as exc:
        raise ValidationFailed("This AI column has no valid setup; save it again.") from exc


def parse_setup(data: Any) -> AiSetup:
    """An ``AiSetup`` from a form's or a request's fields, or ValidationFailed naming the first problem."""
    try:
        return AiSetup.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "setup"
        raise ValidationFailed(f"{where}: {first.get('msg')}", fields={where: [first.get("msg")]}) from None


def _fail(message: str, field: str) -> ValidationFailed:
    return ValidationFailed(message, fields={field: [message]})


def _inputs(table: Table, template: str, self_id: int | None) -> dict[str, int]:
    names = prompts.references(template)
    if not names:
        raise _fail("The prompt must name at least one column, as {{Company}}.", "prompt")
    by_name = {c.name.casefold(): c for c in table.live_columns}
    inputs: dict[str, int] = {}
    for name in names:
        column = by_name.get(name.casefold())
        if column is None:
            raise _fail(f"The prompt names “{name}”, which is not a column of this table.", "prompt")
        if column.id == self_id:
            raise _fail("The prompt cannot read the AI column's own cells.", "prompt")
        inputs[name] = column.id
    return inputs


def _check_output(setup: AiSetup) -> None:
    if setup.output_type == "choice":
        if len(setup.options) < 2:
            raise _fail("Give at least two options to choose from.", "options")
        if len(setup.options) > MAX_OPTIONS:
            raise _fail(f"Give at most {MAX_OPTIONS} options.", "options")
    if setup.output_type == "json":
        if not setup.fields:
            raise _fail("Name at least one field of the JSON answer.", "fields")
        if len(setup.fields) > MAX_FIELDS:
            raise _fail(f"Name at most {MAX_FIELDS} fields.", "fields")
        names = [f.name for f in setup.fields]
        for name in names:
            if not outputs.check_field_name(name):
                raise _fail(f"“{name}” cannot be a field name: use letters, digits and underscores.", "fields")
        if len(set(names)) != len(names):
            raise _fail("Each field of the JSON answer needs its own name.", "fields")


def _field_columns(
    workspace: Workspace, actor: Actor | None, table: Table, setup: AiSetup, previous: AiConfig | None
) -> list[AiField]:
    """The JSON answer's fields with the column each goes into (created when new)."""
    if setup.output_type != "json":
        return []
    live = {c.id: c for c in table.live_columns}
    kept = {f.name: f.column_id for f in (previous.fields if previous else []) if f.column_id in live}
    taken = {c.name.casefold() for c in table.live_columns}
    fields: list[AiField] = []
    for f in setup.fields:
        column_id = f.column_id if f.column_id in live else kept.get(f.name)
        if column_id is not None and live[column_id].type in _COMPUTED:
            raise _fail(f"“{live[column_id].name}” is computed and cannot receive “{f.name}”.", "fields")
        if column_id is None:
            name = f.name.replace("_", " ").strip().capitalize() or f.name
            if name.casefold() in taken:
                name = f"{setup.name} {name}"
            taken.add(name.casefold())
            column_type = outputs.COLUMN_TYPE_OF[f.type]
            if actor is None:
                column_id = service.add_column(workspace, actor, table, name, column_type).id
            else:
                column_id = column_service.add_table_column(workspace, actor, table, name, column_type)[0].id
        fields.append(AiField(name=f.name, type=f.type, column_id=column_id))
    return fields


def _check_endpoint(workspace: Workspace, setup: AiSetup) -> None:
    """The endpoint (and model) must resolve now, so a run does not fail on it later."""
    from morket.ai import service as ai_service

    try:
        ai_service.resolve_endpoint(workspace, setup.endpoint_id, setup.model)
    except NotFound:
        raise _fail("That model endpoint does not exist in this workspace.", "endpoint_id") from None


def _config(
    workspace: Workspace, actor: Actor | None, table: Table, setup: AiSetup, self_id: int | None,
    previous: AiConfig | None,
) -> dict[str, Any]:  # fmt: skip
    inputs = _inputs(table, setup.prompt, self_id)
    _check_output(setup)
    _check_endpoint(workspace, setup)
    fields = _field_columns(workspace, actor, table, setup, previous)
    config = AiConfig(
        prompt=setup.prompt,
        system=setup.system,
        inputs=inputs,
        endpoint_id=setup.endpoint_id,
        model=setup.model or None,
        temperature=setup.temperature,
        max_tokens=setup.max_tokens,
        output_type=setup.output_type,
        options=setup.options if setup.output_type == "choice" else [],
        fields=fields,
        research_steps=setup.research_steps,
        research_pages=setup.research_pages,
    )
    return config.model_dump(mode="json")


def get_ai_column_or_404(workspace: Workspace, table: Table, column_id: int) -> Column:
    """The table's live AI column ``column_id``, or NotFound."""
    service.check_owned(workspace, table)
    column = column_service.get_column_or_404(table, column_id)
    if column.type != COLUMN_TYPE:
        raise NotFound("That column is not an AI column.")
    return column


def create_ai_column(workspace: Workspace, actor: Actor | None, table: Table, setup: AiSetup) -> Column:
    """Add an AI column at the end of the table (and the columns its JSON fields go into)."""
    service.check_owned(workspace, table)
    _inputs(table, setup.prompt, None)  # check before any column is added
    _check_output(setup)
    _check_endpoint(workspace, setup)
    if actor is None:
        column = service.add_column(workspace, actor, table, setup.name, COLUMN_TYPE)
    else:
        column = column_service.add_table_column(workspace, actor, table, setup.name, COLUMN_TYPE)[0]
    column.config = _config(workspace, actor, table, setup, column.id, None)
    db.session.flush()
    record_audit(workspace, actor, "ai.column_created", f"column:{column.id}", table_id=table.id)
    return column


def update_ai_column(workspace: Workspace, actor: Actor | None, table: Table, column_id: int, setup: AiSetup) -> Column:
    """Replace an AI column's setup (name included); cells already answered are kept."""
    column = get_ai_column_or_404(workspace, table, column_id)
    previous = None
    try:
        previous = read_config(column.config)
    except ValidationFailed:
        previous = None
    config = _config(workspace, actor, table, setup, column.id, previous)
    if setup.name.strip() != column.name:
        column_service.rename_table_column(workspace, actor, table, column.id, setup.name, record=actor is not None)
    column.config = config
    service.mark_views_stale(workspace, table, {column.id})
    db.session.flush()
    record_audit(workspace, actor, "ai.column_updated", f"column:{column.id}", table_id=table.id)
    return column


def setup_of(column: Column) -> dict[str, Any]:
    """The column's setup as the form and the API show it."""
    try:
        config = read_config(column.config)
    except ValidationFailed:
        return {"name": column.name}
    data = config.model_dump(mode="json")
    data.pop("kind", None)
    data.pop("inputs", None)
    return {"name": column.name, **data}
