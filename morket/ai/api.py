"""Model endpoints over the JSON API: list (keys masked), the models pickers offer, create, delete, test,
set limits.

Listing takes any reader's token or an API key; creating, deleting and testing an endpoint take a
manager's user token (an API key must not swap where the workspace's prompts and data go).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from morket.ai import nl_filter, service
from morket.ai.models import AiEndpoint
from morket.api.routing import Principal, api_route, user_actor
from morket.api.schemas import DeletedOut, Out, Request
from morket.extensions import db
from morket.tables import service as tables

TAG = "AI"


class AiEndpointCreate(Request):
    """A model endpoint; its key is encrypted and never returned again (only its last characters)."""

    name: str = Field(min_length=1, max_length=service.NAME_MAX, description="A name to tell endpoints apart.")
    kind: Literal["openai", "anthropic"] = Field(description="openai: any OpenAI-compatible server; anthropic.")
    base_url: str | None = Field(
        default=None,
        max_length=service.URL_MAX,
        description="e.g. https://api.openai.com/v1 or https://openrouter.ai/api/v1; empty: the kind's own API.",
    )
    api_key: str = Field(min_length=1, max_length=service.SECRET_MAX, description="The endpoint's API key.")
    model: str = Field(min_length=1, max_length=service.MODEL_MAX, description="The default model.")
    models: list[str] = Field(default_factory=list, max_length=service.MODELS_MAX, description="Other models.")


class AiEndpointOut(Out):
    """A model endpoint, its key masked."""

    id: int
    name: str
    kind: str
    base_url: str
    model: str
    models: list[str]
    masked: str = Field(description='The last characters of a long key, e.g. "••••1a2b".')
    created_at: datetime
    requests_per_minute: int | None = Field(description="The most requests a minute AI runs send (null: default).")
    tokens_per_minute: int | None = Field(description="The most tokens a minute AI runs use (null: default).")


class AiEndpointLimits(Request):
    """An endpoint's limits for AI runs; null (or absent) puts Morket's default back."""

    requests_per_minute: int | None = Field(default=None, ge=1, le=service.RPM_MAX)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=service.TPM_MAX)


class AiModelOut(Out):
    """A model a picker offers: on the platform default (endpoint_id null, charged in credits) or an endpoint."""

    endpoint_id: int | None
    endpoint_name: str
    kind: str
    model: str
    platform: bool


class AiProbeOut(Out):
    """What one tiny call to the endpoint gave: its answer, or the error."""

    ok: bool
    message: str
    input_tokens: int
    output_tokens: int


def _out(endpoint: AiEndpoint) -> AiEndpointOut:
    return AiEndpointOut(
        id=endpoint.id,
        name=endpoint.name,
        kind=endpoint.kind,
        base_url=endpoint.base_url,
        model=endpoint.model,
        models=list(endpoint.models or []),
        masked=endpoint.masked,
        created_at=endpoint.created_at,
        requests_per_minute=endpoint.requests_per_minute,
        tokens_per_minute=endpoint.tokens_per_minute,
    )


@api_route(
    "/ai/endpoints", "GET", summary="List model endpoints (keys masked)", tag=TAG, permission="ai.view",
    response=list[AiEndpointOut],
)  # fmt: skip
def list_ai_endpoints(principal: Principal) -> list[AiEndpointOut]:
    """The workspace's own model endpoints; answers from them cost no platform credits."""
    return [_out(e) for e in service.list_endpoints(principal.workspace)]


@api_route(
    "/ai/models", "GET", summary="List the models AI columns may use", tag=TAG, permission="ai.view",
    response=list[AiModelOut],
)  # fmt: skip
def list_ai_models(principal: Principal) -> list[AiModelOut]:
    """Morket's default endpoint's models first (charged in credits), then each endpoint's."""
    return [AiModelOut.model_validate(choice) for choice in service.list_models(principal.workspace)]


@api_route(
    "/ai/endpoints", "POST", summary="Add a model endpoint", tag=TAG, permission="ai.manage",
    body=AiEndpointCreate, response=AiEndpointOut, status=201,
)  # fmt: skip
def create_ai_endpoint(principal: Principal, body: AiEndpointCreate) -> AiEndpointOut:
    """Store the endpoint with its key encrypted. Needs a user's token."""
    endpoint = service.create_endpoint(
        principal.workspace, user_actor(principal), name=body.name, kind=body.kind, base_url=body.base_url,
        api_key=body.api_key, model=body.model, models=body.models,
    )  # fmt: skip
    db.session.commit()
    return _out(endpoint)


@api_route(
    "/ai/endpoints/<int:endpoint_id>", "DELETE", summary="Delete a model endpoint", tag=TAG,
    permission="ai.manage", response=DeletedOut,
)  # fmt: skip
def delete_ai_endpoint(principal: Principal, endpoint_id: int) -> DeletedOut:
    """AI columns using it stop reaching it at once. Needs a user's token."""
    service.delete_endpoint(principal.workspace, user_actor(principal), endpoint_id)
    db.session.commit()
    return DeletedOut(id=endpoint_id)


@api_route(
    "/ai/endpoints/<int:endpoint_id>/limits", "PUT", summary="Set a model endpoint's limits", tag=TAG,
    permission="ai.manage", body=AiEndpointLimits, response=AiEndpointOut,
)  # fmt: skip
def set_ai_endpoint_limits(principal: Principal, endpoint_id: int, body: AiEndpointLimits) -> AiEndpointOut:
    """Requests and tokens a minute AI runs may send to the endpoint. Needs a user's token."""
    endpoint = service.set_limits(
        principal.workspace, user_actor(principal), endpoint_id,
        requests_per_minute=body.requests_per_minute, tokens_per_minute=body.tokens_per_minute,
    )  # fmt: skip
    out = _out(endpoint)
    db.session.commit()
    return out


@api_route(
    "/ai/endpoints/<int:endpoint_id>/test", "POST", summary="Test a model endpoint", tag=TAG,
    permission="ai.manage", response=AiProbeOut,
)  # fmt: skip
def test_ai_endpoint(principal: Principal, endpoint_id: int) -> AiProbeOut:
    """Make one tiny call to the endpoint's default model and say what came back. Needs a user's token."""
    result = service.probe_endpoint(principal.workspace, user_actor(principal), endpoint_id)
    db.session.commit()
    return AiProbeOut.model_validate(result)


# --- natural language to filters -------------------------------------------------------------------


class FiltersFromText(Request):
    """A description of the rows wanted, in words (never SQL)."""

    text: str = Field(min_length=1, max_length=nl_filter.PHRASE_MAX,
                      description='e.g. "German companies with more than 50 employees and no email yet".')  # fmt: skip
    endpoint_id: int | None = Field(
        default=None, ge=1, le=2**63 - 1, description="A model endpoint of the workspace; null: Morket's."
    )
    model: str | None = Field(default=None, max_length=service.MODEL_MAX, description="A model of that endpoint.")


class FilterConditionOut(Out):
    """One condition as a person would read it."""

    column_id: int
    column: str
    operator: str
    label: str
    value: Any = Field(default=None, description="Text, a list of two (between) or many (any_of), or null.")


class FiltersFromTextOut(Out):
    """A view filter group built only from this table's columns and their operators, not applied yet.

    Apply it with ``PATCH /tables/<table_id>/views/<view_id>`` (``{"filters": <filters>}``)."""

    text: str
    filters: dict[str, Any]
    conditions: list[FilterConditionOut]
    model: str
    input_tokens: int
    output_tokens: int


@api_route(
    "/tables/<int:table_id>/filters/from-text", "POST", summary="Turn a description into view filters", tag=TAG,
    permission="tables.view", body=FiltersFromText, response=FiltersFromTextOut,
)  # fmt: skip
def filters_from_text(principal: Principal, body: FiltersFromText, table_id: int) -> FiltersFromTextOut:
    """Ask the model for filters over this table's columns. A description naming no column, or asking
    for SQL, is refused (422 with the reason); an unreachable model is 502."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    result = nl_filter.translate(principal.workspace, table, body.text, endpoint_id=body.endpoint_id,
                                 model=body.model)  # fmt: skip
    conditions = [
        FilterConditionOut(column_id=c.column_id, column=c.column, operator=c.operator, label=c.label, value=c.value)
        for c in result.chips
    ]
    return FiltersFromTextOut(text=result.phrase, filters=result.filters, conditions=conditions, model=result.model,
                              input_tokens=result.input_tokens, output_tokens=result.output_tokens)  # fmt: skip
