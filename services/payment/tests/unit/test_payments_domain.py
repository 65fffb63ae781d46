"""Payment rules without I/O: status transitions, derived gateway keys, refund limits, the check schedule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.payments import (
    ALLOWED_TRANSITIONS,
    PAYMENT_STATUSES,
    InvalidTransition,
    RefundRefused,
    check_transition,
    invoice_charge_key,
    next_check_at,
    payment_charge_key,
    refund_amount,
    schedule_exhausted,
)

T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)


def test_settled_payments_never_change_and_unknown_never_goes_back_to_pending() -> None:
    for final in ("succeeded", "failed"):
        for other in PAYMENT_STATUSES:
            with pytest.raises(InvalidTransition):
                check_transition(final, other)
    with pytest.raises(InvalidTransition):
        check_transition("unknown", "pending")
    assert ("pending", "unknown") in ALLOWED_TRANSITIONS and ("unknown", "succeeded") in ALLOWED_TRANSITIONS


def test_gateway_keys_depend_only_on_what_is_paid_and_the_attempt() -> None:
    invoice, payment = uuid.uuid4(), uuid.uuid4()
    assert invoice_charge_key(invoice, 2) == invoice_charge_key(invoice, 2)
    assert len({invoice_charge_key(invoice, 1), invoice_charge_key(invoice, 2), payment_charge_key(invoice, 1)}) == 3
    assert payment_charge_key(payment, 1) != payment_charge_key(uuid.uuid4(), 1)


@given(
    amount=st.integers(1, 10**9),
    refunds=st.lists(st.one_of(st.none(), st.integers(-5, 10**9)), max_size=12),
)
def test_refunds_never_exceed_the_captured_amount(amount: int, refunds: list[int | None]) -> None:
    refunded = 0
    for requested in refunds:
        try:
            granted = refund_amount("succeeded", amount, refunded, requested)
        except RefundRefused:
            continue
        assert granted > 0 and (requested is None or granted == requested)
        refunded += granted
        assert refunded <= amount


@pytest.mark.parametrize("status", ["pending", "failed", "unknown"])
def test_only_succeeded_payments_can_be_refunded(status: str) -> None:
    with pytest.raises(RefundRefused) as refused:
        refund_amount(status, 100, 0, None)
    assert refused.value.code == "payment_not_refundable"


def test_refund_defaults_to_what_is_left_and_refuses_too_much() -> None:
    assert refund_amount("succeeded", 1000, 300, None) == 700
    with pytest.raises(RefundRefused) as refused:
        refund_amount("succeeded", 1000, 300, 701)
    assert refused.value.code == "amount_too_large"
    with pytest.raises(RefundRefused) as done:
        refund_amount("succeeded", 1000, 1000, None)
    assert done.value.code == "payment_fully_refunded"


def test_checks_follow_the_schedule_then_repeat_its_last_interval() -> None:
    schedule = [300, 3600, 86400]
    assert next_check_at(schedule, 0, T0) == T0 + timedelta(minutes=5)
    assert next_check_at(schedule, 1, T0) == T0 + timedelta(hours=1)
    assert next_check_at(schedule, 2, T0) == T0 + timedelta(days=1)
    assert next_check_at(schedule, 7, T0) == T0 + timedelta(days=1)
    assert [schedule_exhausted(schedule, n) for n in range(5)] == [False, False, False, True, True]
