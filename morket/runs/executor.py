"""The seam between the row-run engine and a kind of job: the ``Executor`` protocol and its registry.

The engine (``morket.runs``) owns what every kind of row work needs: batches leased by workers,
a thread pool, the providers' limits and breakers (``core.throttle``), writing each batch back
once, one charge per delivered value under one idempotency key, reconciling expired leases,
pauses, cancels and asynchronous answers. An executor owns what differs: what a run's steps are
(``plan``), what a row's inputs are (``prepare``), what one row's work is (``row_worker``), what
it files besides the cell state (``file``), what counts as a delivered value and what it costs
(``charge``), and how an asynchronous answer reads (``answer``). Enrichment's provider waterfall
is the first executor; a CRM push or an AI column is another module with the same five methods.
The engine never imports an executor: each registers itself here when its package loads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from morket.credits.service import Charge
    from morket.runs.limits import CallScope
    from morket.runs.models import Run
    from morket.tables.models import Table


@dataclass
class ClaimedRow:
    """A row a worker leased: where it stands in its run and any asynchronous answer it holds."""

    row_id: int
    step_index: int
    attempts: int
    message: str | None
    stored_result: dict[str, Any] | None


@dataclass
class RowOutcome:
    """What one row's work came to; the engine files it (``kind``: final, retry, await, release)."""

    row_id: int
    kind: str
    state: str  # the cell state shown in the grid
    provider: str | None = None
    message: str | None = None
    value: Any = None
    fields: dict[str, Any] | None = None
    step_index: int = 0
    attempts: int = 0
    next_attempt_at: datetime | None = None
    callback_id: str | None = None
    # The executor's records of this try (written by ``Executor.file`` with the batch).
    attempt_log: list[Any] = field(default_factory=list)
    # The run row's step and attempts before this try (what a release puts back).
    origin: tuple[int, int] = (0, 0)
    # The executor's record of whoever delivered the value (the ledger entry points at it).
    delivered_by: Any = None

    def release(self) -> None:
        """Give the row back untouched: it is tried again from where it was."""
        self.kind, self.state, self.message, self.attempt_log = "release", "queued", None, []
        self.step_index, self.attempts, self.next_attempt_at = self.origin[0], self.origin[1], None


class Release(Exception):
    """Stop working on this row and give it back (Redis away, lease nearly over, run paused)."""


class RunPlanLike(Protocol):
    """What the engine reads of an executor's plan (built once per job)."""

    run_id: int
    workspace_id: int
    table_id: int
    column_id: int


@dataclass
class Prepared:
    """A claimed batch as the executor read it: the rows it can work on and what they share."""

    rows: list[ClaimedRow]
    missing: list[int]
    shared: Any = None


class Executor(Protocol):
    """A kind of row work the engine can run. See the module docstring for who owns what."""

    kind: str
    # The job function (dotted path) the engine enqueues as ``job(run_id, slot)``.
    job: str

    def plan(self, run: Run, *, resolve_keys: bool = True) -> RunPlanLike:
        """Read the run's configuration into what its batches need (raise when it cannot be used)."""

    def min_balance(self, plan: RunPlanLike) -> int:
        """The balance below which a delivered value cannot be paid for (0: the run is free)."""

    def prepare(self, table: Table, plan: RunPlanLike, claimed: Sequence[ClaimedRow]) -> Prepared:
        """Read the claimed rows' inputs (and anything the batch shares) in the job's session."""

    def row_worker(self, plan: RunPlanLike, prepared: Prepared, scope: CallScope) -> Callable[[Any], RowOutcome]:
        """The function a pool thread runs for one prepared row (no database session there)."""

    def file(self, table: Table, plan: RunPlanLike, outcomes: Sequence[RowOutcome]) -> dict[int, dict[int, Any]]:
        """Write the executor's own records of the held rows; return the cell values to write per row."""

    def charge(self, plan: RunPlanLike, outcome: RowOutcome) -> Charge | None:
        """The charging rule: what a row's outcome costs (None: nothing), keyed by ``charge_key``."""

    def answer(
        self, run: Run, row_id: int, step_index: int, provider: str, payload: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Record an asynchronous answer for a row's step and return it as the row keeps it (None: not ours).

        The answer has at least ``outcome`` (a provider outcome: hit, not_found, retryable …).
        """


def charge_key(run_id: int, row_id: int, column_id: int) -> str:
    """The one idempotency key of a row's delivered value: a replayed batch charges nothing more."""
    return f"enrich:{run_id}:{row_id}:{column_id}"


_EXECUTORS: dict[str, Executor] = {}


def register_executor(executor: Executor) -> Executor:
    """Make ``executor`` the one that runs ``executor.kind``."""
    _EXECUTORS[executor.kind] = executor
    return executor


def executor_for(run: Run) -> Executor:
    """The executor of ``run`` (every run so far is an enrichment run; see ``Run.kind``)."""
    return _EXECUTORS[run.kind]
