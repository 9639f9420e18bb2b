"""The ledger: charges, replays, refunds, adjustments, own-key use, and rows nobody can rewrite."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from morket.core.errors import NotFound, ValidationFailed
from morket.credits import prices, service
from morket.credits.models import LedgerEntry
from morket.credits.service import InsufficientCredits


def _entries(db, workspace) -> list[LedgerEntry]:
    return list(
        db.session.scalars(select(LedgerEntry).where(LedgerEntry.workspace_id == workspace.id).order_by(LedgerEntry.id))
    )


def test_prices_come_from_one_table():
    assert prices.price("hunter.email_finder") == 2
    assert prices.price("clearbit.combined") == 3
    assert prices.price("http.request") == 0
    assert prices.price("nobody.knows") == 0


def test_a_charge_debits_the_balance_and_points_at_its_cause(db, owner, fund):
    workspace, _ = owner
    fund(workspace, 10)
    entry = service.charge(
        workspace.id,
        2,
        idempotency_key="run:7:row:3:col:5:step:0",
        run_id=7,
        row_id=3,
        column_id=5,
        attempt_id=11,
        provider="hunter",
        operation="hunter.email_finder",
    )
    assert entry is not None
    assert (entry.kind, entry.amount, entry.balance_after) == ("debit", -2, 8)
    assert (entry.run_id, entry.row_id, entry.column_id, entry.attempt_id) == (7, 3, 5, 11)
    assert (entry.provider, entry.operation, entry.key_source) == ("hunter", "hunter.email_finder", "platform")
    assert service.balance(workspace.id) == 8


def test_the_same_key_twice_charges_once(db, owner, fund):
    workspace, _ = owner
    fund(workspace, 5)
    first = service.charge(workspace.id, 2, idempotency_key="k1", run_id=1)
    again = service.charge(workspace.id, 2, idempotency_key="k1", run_id=1)
    assert first is not None and again is None
    assert service.balance(workspace.id) == 3
    assert [e.amount for e in _entries(db, workspace)] == [5, -2]


def test_a_replay_answers_already_charged_even_when_the_balance_ran_out(db, owner, fund):
    workspace, _ = owner
    fund(workspace, 2)
    assert service.charge(workspace.id, 2, idempotency_key="k1") is not None
    assert service.charge(workspace.id, 2, idempotency_key="k1") is None
    with pytest.raises(InsufficientCredits):
        service.charge(workspace.id, 2, idempotency_key="k2")


def test_a_short_balance_refuses_and_writes_nothing(db, owner, fund):
    workspace, _ = owner
    fund(workspace, 1)
    with pytest.raises(InsufficientCredits) as caught:
        service.charge(workspace.id, 2, idempotency_key="big")
    assert (caught.value.balance, caught.value.needed, caught.value.status) == (1, 2, 402)
    assert service.balance(workspace.id) == 1
    assert [e.kind for e in _entries(db, workspace)] == ["grant"]
    # The refused key stays free: once funded, the same hit can be charged.
    fund(workspace, 5)
    assert service.charge(workspace.id, 2, idempotency_key="big").balance_after == 4


def test_a_workspace_that_never_had_credits_cannot_be_charged(db, owner):
    workspace, _ = owner
    assert service.balance(workspace.id) == 0
    with pytest.raises(InsufficientCredits):
        service.charge(workspace.id, 1, idempotency_key="k")
    assert _entries(db, workspace) == []


def test_own_key_use_costs_nothing_but_is_recorded(db, owner, fund):
    workspace, _ = owner
    fund(workspace, 3)
    entry = service.charge(
        workspace.id, 2, idempotency_key="own-1", run_id=4, row_id=9, provider="apollo", key_source="own"
    )
    assert (entry.kind, entry.amount, entry.balance_after, entry.key_source) == ("usage", 0, 3, "own")
    assert service.charge(workspace.id, 2, idempotency_key="own-1", key_source="own") is None
    assert service.balance(workspace.id) == 3


def test_own_key_use_is_recorded_even_with_no_credits(db, owner):
    workspace, _ = owner
    assert service.charge(workspace.id, 2, idempotency_key="own-2", key_source="own").amount == 0


def test_keys_are_per_workspace(db, owner, stranger, fund):
    (a, _), (b, _) = owner, stranger
    fund(a, 2)
    fund(b, 2)
    assert service.charge(a.id, 1, idempotency_key="same") is not None
    assert service.charge(b.id, 1, idempotency_key="same") is not None
    assert (service.balance(a.id), service.balance(b.id)) == (1, 1)


def test_a_refund_gives_back_at_most_what_the_charge_cost(db, owner, fund):
    workspace, _ = owner
    fund(workspace, 10)
    debit = service.charge(workspace.id, 3, idempotency_key="hit")
    first = service.refund(workspace.id, 2, idempotency_key="refund-1", refers_to=debit.id, note="provider error")
    assert (first.kind, first.amount, first.balance_after, first.refers_to_id) == ("refund", 2, 9, debit.id)
    assert service.refund(workspace.id, 2, idempotency_key="refund-1", refers_to=debit.id) is None
    with pytest.raises(ValidationFailed, match="refunded already"):
        service.refund(workspace.id, 2, idempotency_key="refund-2", refers_to=debit.id)
    assert service.refund(workspace.id, 1, idempotency_key="refund-3", refers_to=debit.id).balance_after == 10
    assert service.balance(workspace.id) == 10


def test_a_refund_must_name_a_charge_of_the_same_workspace(db, owner, stranger, fund):
    (a, _), (b, _) = owner, stranger
    fund(a, 5)
    fund(b, 5)
    theirs = service.charge(b.id, 2, idempotency_key="theirs")
    grant = fund(a, 1)
    with pytest.raises(NotFound):
        service.refund(a.id, 1, idempotency_key="r1", refers_to=theirs.id)
    with pytest.raises(NotFound):
        service.refund(a.id, 1, idempotency_key="r2", refers_to=grant.id)
    assert (service.balance(a.id), service.balance(b.id)) == (6, 3)


def test_adjustments_need_a_reason_and_never_go_below_zero(db, owner, fund):
    workspace, user = owner
    fund(workspace, 5)
    with pytest.raises(ValidationFailed, match="why"):
        service.adjust(workspace.id, 3, idempotency_key="a0", actor_id=user.id, note="  ")
    up = service.adjust(workspace.id, 3, idempotency_key="a1", actor_id=user.id, note="goodwill")
    assert (up.kind, up.amount, up.balance_after, up.actor_id, up.note) == ("adjustment", 3, 8, user.id, "goodwill")
    down = service.adjust(workspace.id, -8, idempotency_key="a2", actor_id=user.id, note="correction")
    assert down.balance_after == 0
    with pytest.raises(InsufficientCredits):
        service.adjust(workspace.id, -1, idempotency_key="a3", actor_id=user.id, note="too far")
    assert service.balance(workspace.id) == 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda w: service.grant(w, 0, idempotency_key="g"), "zero"),
        (lambda w: service.grant(w, -5, idempotency_key="g"), "negative"),
        (lambda w: service.charge(w, -1, idempotency_key="c"), "negative"),
        (lambda w: service.charge(w, 1, idempotency_key=""), "idempotency key"),
        (lambda w: service.charge(w, 1, idempotency_key="x" * 201), "idempotency key"),
        (lambda w: service.charge(w, 1, idempotency_key="c", key_source="borrowed"), "key source"),
        (lambda w: service.grant(w, 10**12, idempotency_key="g"), "at most"),
        (lambda w: service.grant(w, 1.5, idempotency_key="g"), "whole number"),
    ],
)
def test_bad_input_is_refused_with_a_message(db, owner, call, message):
    workspace, _ = owner
    with pytest.raises(ValidationFailed, match=message):
        call(workspace.id)
    assert _entries(db, workspace) == []


def test_ledger_rows_cannot_be_changed_or_deleted(db, owner, fund):
    workspace, _ = owner
    entry = fund(workspace, 5)
    with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(update(LedgerEntry).where(LedgerEntry.id == entry.id).values(amount=500))
    with pytest.raises(DBAPIError, match="append-only"), db.session.begin_nested():
        db.session.execute(delete(LedgerEntry).where(LedgerEntry.id == entry.id))
    assert db.session.scalar(select(LedgerEntry.amount).where(LedgerEntry.id == entry.id)) == 5


def test_the_balance_cannot_be_set_below_zero_even_by_hand(db, owner, fund):
    workspace, _ = owner
    fund(workspace, 5)
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.execute(text("UPDATE credit_balances SET balance = -1 WHERE workspace_id = :w"), {"w": workspace.id})


def test_deleting_the_workspace_takes_its_ledger_with_it(db, owner, fund):
    from morket.workspaces import service as workspaces

    workspace, user = owner
    debit_source = fund(workspace, 5)
    debit = service.charge(workspace.id, 2, idempotency_key="hit")
    service.refund(workspace.id, 1, idempotency_key="back", refers_to=debit.id)
    workspace_id = workspace.id
    assert debit_source is not None
    workspaces.delete_workspace(workspace, user)
    assert db.session.scalars(select(LedgerEntry).where(LedgerEntry.workspace_id == workspace_id)).all() == []
    assert service.balance(workspace_id) == 0


def test_a_new_workspace_gets_its_welcome_credits_once(app, db, owner):
    from morket.workspaces import service as workspaces

    _, user = owner
    workspace = workspaces.create_workspace(user, "Fresh Co")
    welcome = app.config["MORKET"]["WELCOME_CREDITS"]
    assert service.balance(workspace.id) == welcome
    assert service.grant_welcome(workspace, user) is None
    [entry] = _entries(db, workspace)
    assert (entry.kind, entry.amount, entry.idempotency_key) == ("grant", welcome, f"welcome:{workspace.id}")


def test_only_platform_admins_may_adjust_through_the_console_service(db, owner):
    workspace, user = owner
    with pytest.raises(NotFound):
        service.admin_adjust(user, workspace, 100, "self-service top-up", idempotency_key="sneaky")
    assert service.balance(workspace.id) == 0
