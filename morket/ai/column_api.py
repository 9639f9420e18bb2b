"""AI columns over the JSON API: columns, tries ("dry runs"), estimates, runs with budgets, the monthly budget,
research results with their sources.

Everything is looked up inside the caller's workspace, so another workspace's ids answer 404.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from morket.ai import budget, column_runs, columns, research_results
from morket.ai.column_models import AiDryRun
from morket.api.routing import Principal, api_route
from morket.extensions import db
from morket.tables import service as tables
from morket.tables.models import Column, Table

TAG = "AI columns"
MAX_ID = 2**63 - 1
MAX_CREDITS = 10**15


class AiFieldOut(BaseModel):
    name: str
    type: str
    column_id: int | None


class AiColumnOut(BaseModel):
    id: int
    table_id: int
    name: str
    prompt: str
    system: str
    endpoint_id: int | None
    model: str | None
    temperature: float
    max_tokens: int
    output_type: str
    options: list[str]
    fields: list[AiFieldOut]
    inputs: dict[str, int]
    research_steps: int
    research_pages: int


class AiSampleOut(BaseModel):
    row_id: int
    prompt: str
    answer: str | None = None
    value: Any = None
    fields: dict[str, Any] | None = None
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: int = 0
    sources: list[dict[str, str]] | None = None  # a research column's: url, title, quote


class AiDryRunOut(BaseModel):
    id: int
    column_id: int
    samples: list[AiSampleOut]
    credits: int
    input_tokens: int
    output_tokens: int
    rows_total: int
    estimate_credits: int


class AiEstimateOut(BaseModel):
    rows: int
    per_row: float | None
    estimate_credits: int | None
    max_credits: int
    monthly_limit: int | None
    month_spent: int


class AiEstimateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["all", "empty"] = "all"


class AiRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["all", "empty", "selected"] = "all"
    row_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        default=None, max_length=column_runs.MAX_SELECTED_ROWS
    )
    budget_credits: int | None = Field(default=None, ge=1, le=MAX_CREDITS)


class AiBudgetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    budget_credits: int | None = Field(default=None, ge=1, le=MAX_CREDITS)


class AiMonthlyBudget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    monthly_credits: int | None = Field(default=None, ge=0, le=MAX_CREDITS)


class AiMonthlyBudgetOut(BaseModel):
    monthly_credits: int | None
    month_spent: int


class AiRunOut(BaseModel):
    id: int
    column_id: int
    table_id: int
    status: str
    finished: bool
    pause_reason: str | None
    stopped_at_budget: bool
    budget_credits: int | None
    total: int
    done: int
    queued: int
    succeeded: int
    failed: int
    no_data: int
    cancelled: int
    credits_used: int
    estimate_credits: int
    percent: int


def _column_out(column: Column) -> AiColumnOut:
    config = columns.read_config(column.config)
    return AiColumnOut(
        id=column.id,
        table_id=column.table_id,
        name=column.name,
        prompt=config.prompt,
        system=config.system,
        endpoint_id=config.endpoint_id,
        model=config.model,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        output_type=config.output_type,
        options=config.options,
        fields=[AiFieldOut(**f.model_dump()) for f in config.fields],
        inputs=config.inputs,
        research_steps=config.research_steps,
        research_pages=config.research_pages,
    )


def _dry_out(dry: AiDryRun) -> AiDryRunOut:
    return AiDryRunOut(
        id=dry.id,
        column_id=dry.column_id,
        samples=[AiSampleOut(**s) for s in dry.samples],
        credits=dry.credits,
        input_tokens=dry.input_tokens,
        output_tokens=dry.output_tokens,
        rows_total=dry.rows_total,
        estimate_credits=dry.estimate_credits,
    )


def _table_column(principal: Principal, table_id: int, ai_column_id: int) -> tuple[Table, Column]:
    table = tables.get_table_or_404(principal.workspace, table_id)
    return table, columns.get_ai_column_or_404(principal.workspace, table, ai_column_id)


@api_route("/tables/<int:table_id>/ai-columns", "GET", summary="List a table's AI columns", tag=TAG,
           permission="enrichment.view", response=list[AiColumnOut])  # fmt: skip
def list_ai_columns(principal: Principal, table_id: int) -> list[AiColumnOut]:
    """Every AI column of the table with its prompt, model and output type."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    return [_column_out(c) for c in column_runs.ai_columns(table)]


@api_route("/tables/<int:table_id>/ai-columns", "POST", summary="Add an AI column", tag=TAG,
           permission="enrichment.run", body=columns.AiSetup, response=AiColumnOut, status=201)  # fmt: skip
def create_ai_column(principal: Principal, table_id: int, body: columns.AiSetup) -> AiColumnOut:
    """The prompt names columns as ``{{Column}}``; a ``json`` output's fields each get a new column."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    column = columns.create_ai_column(principal.workspace, principal.user, table, body)
    out = _column_out(column)
    db.session.commit()
    return out


@api_route("/tables/<int:table_id>/ai-columns/<int:ai_column_id>", "GET", summary="Get an AI column", tag=TAG,
           permission="enrichment.view", response=AiColumnOut)  # fmt: skip
def get_ai_column(principal: Principal, table_id: int, ai_column_id: int) -> AiColumnOut:
    return _column_out(_table_column(principal, table_id, ai_column_id)[1])


@api_route("/tables/<int:table_id>/ai-columns/<int:ai_column_id>", "PUT", summary="Replace an AI column's setup",
           tag=TAG, permission="enrichment.run", body=columns.AiSetup, response=AiColumnOut)  # fmt: skip
def update_ai_column(principal: Principal, table_id: int, ai_column_id: int, body: columns.AiSetup) -> AiColumnOut:
    """The whole setup is replaced; cells already answered keep their values."""
    table, column = _table_column(principal, table_id, ai_column_id)
    column = columns.update_ai_column(principal.workspace, principal.user, table, column.id, body)
    out = _column_out(column)
    db.session.commit()
    return out


@api_route("/tables/<int:table_id>/ai-columns/<int:ai_column_id>/dry-runs", "POST", status=201, errors=(422,),
           summary="Try an AI column on 5 rows", tag=TAG, permission="enrichment.run",
           response=AiDryRunOut)  # fmt: skip
def create_dry_run(principal: Principal, table_id: int, ai_column_id: int) -> AiDryRunOut:
    """Asks the model for the first 5 rows with something to ask: prompts, answers, costs and an estimate.

    No cell is written; the answers are charged like a run's."""
    table, column = _table_column(principal, table_id, ai_column_id)
    dry = column_runs.try_rows(principal.workspace, principal.user, table, column)
    out = _dry_out(dry)
    db.session.commit()
    return out


@api_route("/tables/<int:table_id>/ai-columns/<int:ai_column_id>/estimate", "GET", summary="Estimate an AI run",
           tag=TAG, permission="enrichment.view", query=AiEstimateQuery, response=AiEstimateOut)  # fmt: skip
def estimate_ai_run(principal: Principal, table_id: int, ai_column_id: int, query: AiEstimateQuery) -> AiEstimateOut:
    """From the last try's cost per answered row, and the most the run could cost."""
    table, column = _table_column(principal, table_id, ai_column_id)
    found = column_runs.estimate(principal.workspace, table, column, scope=query.scope)
    return AiEstimateOut(**found.__dict__)


@api_route("/tables/<int:table_id>/ai-columns/<int:ai_column_id>/runs", "POST", summary="Run an AI column",
           tag=TAG, permission="enrichment.run", body=AiRunRequest, response=AiRunOut, status=202)  # fmt: skip
def start_ai_run(principal: Principal, table_id: int, ai_column_id: int, body: AiRunRequest) -> AiRunOut:
    """With ``budget_credits`` the run stops before it would spend more (rows not reached stay queued)."""
    table, column = _table_column(principal, table_id, ai_column_id)
    run = column_runs.start_run(principal.workspace, principal.user, table, column, scope=body.scope,
                                row_ids=body.row_ids, budget_credits=body.budget_credits)  # fmt: skip
    db.session.commit()
    return AiRunOut(**column_runs.progress(run))


@api_route("/ai-runs/<int:ai_run_id>", "GET", summary="Get an AI run's progress", tag=TAG,
           permission="enrichment.view", response=AiRunOut)  # fmt: skip
def get_ai_run(principal: Principal, ai_run_id: int) -> AiRunOut:
    return AiRunOut(**column_runs.progress(column_runs.get_run_or_404(principal.workspace, ai_run_id)))


@api_route("/ai-runs/<int:ai_run_id>/cancel", "POST", summary="Cancel an AI run", tag=TAG,
           permission="enrichment.run", response=AiRunOut, errors=(409,))  # fmt: skip
def cancel_ai_run(principal: Principal, ai_run_id: int) -> AiRunOut:
    run = column_runs.get_run_or_404(principal.workspace, ai_run_id)
    run = column_runs.cancel_run(principal.workspace, principal.user, run)
    db.session.commit()
    return AiRunOut(**column_runs.progress(run))


@api_route("/ai-runs/<int:ai_run_id>/budget", "POST", summary="Raise a stopped AI run's budget", tag=TAG,
           permission="enrichment.run", body=AiBudgetRequest, response=AiRunOut, errors=(409,))  # fmt: skip
def raise_ai_run_budget(principal: Principal, ai_run_id: int, body: AiBudgetRequest) -> AiRunOut:
    """A run stopped at its budget goes on from its queued rows (None: no budget)."""
    run = column_runs.get_run_or_404(principal.workspace, ai_run_id)
    run = column_runs.raise_budget(principal.workspace, principal.user, run, body.budget_credits)
    out = AiRunOut(**column_runs.progress(run))
    db.session.commit()
    return out


@api_route("/ai-budget", "GET", summary="The workspace's monthly AI budget", tag=TAG, permission="ai.view",
           response=AiMonthlyBudgetOut)  # fmt: skip
def get_monthly_budget(principal: Principal) -> AiMonthlyBudgetOut:
    workspace_id = principal.workspace.id
    return AiMonthlyBudgetOut(monthly_credits=budget.monthly_limit(workspace_id),
                            month_spent=budget.month_spent(workspace_id))  # fmt: skip


@api_route("/ai-budget", "PUT", summary="Set the workspace's monthly AI budget", tag=TAG, permission="ai.manage",
           body=AiMonthlyBudget, response=AiMonthlyBudgetOut)  # fmt: skip
def set_monthly_budget(principal: Principal, body: AiMonthlyBudget) -> AiMonthlyBudgetOut:
    """``monthly_credits`` null removes the limit; AI runs and tries stop before they would spend past it."""
    budget.set_monthly_limit(principal.workspace, principal.user, body.monthly_credits)
    out = AiMonthlyBudgetOut(
        monthly_credits=body.monthly_credits, month_spent=budget.month_spent(principal.workspace.id)
    )
    db.session.commit()
    return out


# --- research results -----------------------------------------------------------------------------------


class ResearchSourceOut(BaseModel):
    url: str
    title: str = ""
    quote: str


class ResearchPageOut(BaseModel):
    url: str
    final_url: str | None = None
    status: int | None = None
    outcome: str  # read | refused | error
    reason: str | None = None


class ResearchSearchOut(BaseModel):
    query: str
    results: list[str]


class ResearchResultOut(BaseModel):
    row_id: int
    column_id: int
    run_id: int | None
    status: str  # answered | unsourced | gave_up
    answer: str | None
    message: str | None
    sources: list[ResearchSourceOut]
    pages: list[ResearchPageOut]
    searches: list[ResearchSearchOut]
    steps: int
    input_tokens: int
    output_tokens: int
    updated_at: str


class ResearchListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    after_row_id: int = Field(default=0, ge=0, le=MAX_ID)
    limit: int = Field(default=100, ge=1, le=research_results.MAX_PAGE)


def _research_out(found: Any) -> ResearchResultOut:
    record = found.record or {}
    return ResearchResultOut(
        row_id=found.row_id,
        column_id=found.column_id,
        run_id=found.run_id,
        status=found.status,
        answer=found.answer,
        message=record.get("message"),
        sources=[ResearchSourceOut(**s) for s in record.get("sources") or []],
        pages=[
            ResearchPageOut(**{k: p.get(k) for k in ResearchPageOut.model_fields}) for p in record.get("pages") or []
        ],
        searches=[ResearchSearchOut(**s) for s in record.get("searches") or []],
        steps=int(record.get("steps") or 0),
        input_tokens=int(record.get("input_tokens") or 0),
        output_tokens=int(record.get("output_tokens") or 0),
        updated_at=found.updated_at.isoformat(),
    )


@api_route("/tables/<int:table_id>/ai-columns/<int:ai_column_id>/research", "GET", tag=TAG,
           summary="List a research column's results", permission="enrichment.view", query=ResearchListQuery,
           response=list[ResearchResultOut])  # fmt: skip
def list_research_results(
    principal: Principal, table_id: int, ai_column_id: int, query: ResearchListQuery
) -> list[ResearchResultOut]:
    """Each researched row's answer, its sources (URL, title, the quoted passage) and every page visited,
    in row id order; page with ``after_row_id`` (the last row id received)."""
    table, column = _table_column(principal, table_id, ai_column_id)
    found = research_results.list_results(
        principal.workspace, table, column, after_row_id=query.after_row_id, limit=query.limit
    )
    return [_research_out(r) for r in found]


@api_route("/tables/<int:table_id>/ai-columns/<int:ai_column_id>/rows/<int:row_id>/research", "GET", tag=TAG,
           summary="Get one row's research result", permission="enrichment.view",
           response=ResearchResultOut)  # fmt: skip
def get_research_result(principal: Principal, table_id: int, ai_column_id: int, row_id: int) -> ResearchResultOut:
    """The row's answer with its sources; 404 when the row was never researched in this column."""
    table = tables.get_table_or_404(principal.workspace, table_id)
    return _research_out(research_results.get_result_or_404(principal.workspace, table, ai_column_id, row_id))
