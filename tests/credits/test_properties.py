"""Property test: any sequence of grants, charges, refunds, adjustments and replays keeps the books straight.

After every step the balance equals the sum of the ledger, is never negative, and the newest entry's
``balance_after`` is the balance; a refused step changes nothing; a replayed key changes nothing.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from morket.core.errors import MorketError
from morket.credits import service
from morket.credits.models import LedgerEntry
from morket.credits.service import InsufficientCredits
from tests.factories import WorkspaceFactory

_keys = st.sampled_from([f"k{n}" for n in range(8)])
_step = st.one_of(
    st.tuples(st.just("grant"), st.integers(1, 20), _keys),
    st.tuples(st.just("charge"), st.integers(0, 6), _keys),
    st.tuples(st.just("own"), st.integers(0, 6), _keys),
    st.tuples(st.just("refund"), st.integers(1, 6), _keys),
    st.tuples(st.just("adjust"), st.integers(-15, 15).filter(bool), _keys),
)


def _book(workspace_id: int) -> tuple[int, int, int | None, int]:
    from morket.extensions import db

    total, count = db.session.execute(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0), func.count()).where(
            LedgerEntry.workspace_id == workspace_id
        )
    ).one()
    last = db.session.scalar(
        select(LedgerEntry.balance_after)
        .where(LedgerEntry.workspace_id == workspace_id)
        .order_by(LedgerEntry.id.desc())
        .limit(1)
    )
    return service.balance(workspace_id), int(total), last, int(count)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(steps=st.lists(_step, max_size=25))
def test_the_balance_is_always_the_sum_of_the_ledger(db, steps):
    workspace = WorkspaceFactory()
    debits: list[int] = []
    for n, (kind, amount, key) in enumerate(steps):
        before = _book(workspace.id)
        key = f"{kind}:{key}"
        try:
            if kind == "grant":
                entry = service.grant(workspace.id, amount, idempotency_key=key)
            elif kind in ("charge", "own"):
                source = "own" if kind == "own" else "platform"
                entry = service.charge(workspace.id, amount, idempotency_key=key, row_id=n, key_source=source)
                if entry is not None and entry.kind == "debit":
                    debits.append(entry.id)
            elif kind == "refund":
                target = debits[n % len(debits)] if debits else None
                entry = service.refund(workspace.id, amount, idempotency_key=key, refers_to=target)
            else:
                entry = service.adjust(workspace.id, amount, idempotency_key=key, actor_id=None, note="property")
        except (InsufficientCredits, MorketError):
            assert _book(workspace.id) == before, f"a refused {kind} changed the books"
            continue
        balance, total, last, count = _book(workspace.id)
        assert balance == total >= 0
        assert last == balance
        if entry is None:
            assert (balance, count) == (before[0], before[3]), f"a replayed {kind} changed the books"
        else:
            assert count == before[3] + 1
            assert balance == before[0] + entry.amount
