"""Settling payments and refunds from gateway answers, on unsaved rows (no database needed)."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

from app.adapters.gateway import ChargeResult, RefundResult
from app.db.models import Payment
from app.service_layer.charges import ChargeTarget, apply_charge_result, new_payment
from app.service_layer.refunds import apply_refund_result, reserve_refund

NOW = datetime(2026, 3, 1, 9, tzinfo=UTC)
SCHEDULE = [300, 3600, 86400]


def pending(amount: int = 1000) -> Payment:
    target = ChargeTarget(uuid.uuid4(), amount, "USD", "api", 1, "pay_x_attempt_1")
    return new_payment(target, None, at=NOW, now=NOW, pending_grace_s=120)


def test_a_lost_answer_makes_the_payment_unknown_and_schedules_the_first_check() -> None:
    payment = pending()
    assert apply_charge_result(payment, ChargeResult("unknown"), at=NOW, now=NOW, schedule=SCHEDULE) is None
    assert payment.status == "unknown" and payment.next_reconcile_at == NOW + timedelta(minutes=5)


def test_a_decline_fails_the_payment_with_its_code_and_announces_it() -> None:
    payment = pending()
    event = apply_charge_result(
        payment, ChargeResult("failed", "ch_1", "insufficient_funds", "soft"), at=NOW, now=NOW, schedule=SCHEDULE
    )
    assert event is not None and event.type == "payment.failed"
    assert (event.failure_code, event.decline_type, event.attempt) == ("insufficient_funds", "soft", 1)
    assert payment.next_reconcile_at is None


def test_a_settled_payment_ignores_any_later_answer() -> None:
    payment = pending()
    apply_charge_result(payment, ChargeResult("succeeded", "ch_1"), at=NOW, now=NOW, schedule=SCHEDULE)
    again = apply_charge_result(payment, ChargeResult("failed", "ch_2", "card_declined", "hard"),
                                at=NOW, now=NOW, schedule=SCHEDULE)
    assert again is None and (payment.status, payment.gateway_charge_id) == ("succeeded", "ch_1")


def test_a_failed_refund_gives_its_reservation_back() -> None:
    payment = pending()
    apply_charge_result(payment, ChargeResult("succeeded", "ch_1"), at=NOW, now=NOW, schedule=SCHEDULE)
    refund = reserve_refund(payment, 400, now=NOW, pending_grace_s=120)
    assert payment.refunded_amount == 400
    assert apply_refund_result(payment, refund, RefundResult("failed", failure_code="x"), now=NOW,
                               schedule=SCHEDULE) is None
    assert (refund.status, payment.refunded_amount) == ("failed", 0)


def test_an_unknown_refund_keeps_its_reservation_until_settled() -> None:
    payment = pending()
    apply_charge_result(payment, ChargeResult("succeeded", "ch_1"), at=NOW, now=NOW, schedule=SCHEDULE)
    refund = reserve_refund(payment, 1000, now=NOW, pending_grace_s=120)
    apply_refund_result(payment, refund, RefundResult("unknown"), now=NOW, schedule=SCHEDULE)
    assert (refund.status, payment.refunded_amount) == ("unknown", 1000)
    event = apply_refund_result(payment, refund, RefundResult("succeeded", "re_1", 1000), now=NOW, schedule=SCHEDULE)
    assert event is not None and event.amount == 1000 and refund.status == "succeeded"


def test_a_failed_credit_note_refund_is_logged_as_an_error_for_a_person_to_act_on(caplog) -> None:
    payment = pending()
    apply_charge_result(payment, ChargeResult("succeeded", "ch_1"), at=NOW, now=NOW, schedule=SCHEDULE)
    asked = reserve_refund(payment, 100, now=NOW, pending_grace_s=120)
    credited = reserve_refund(payment, 200, now=NOW, pending_grace_s=120, credit_note_id=uuid.uuid4(),
                              reason="credit_note", key="re_cn_1")
    overpaid = reserve_refund(payment, 300, now=NOW, pending_grace_s=120, reason="overpayment", key="re_over_1")
    with caplog.at_level(logging.ERROR):
        apply_refund_result(payment, asked, RefundResult("failed", failure_code="x"), now=NOW, schedule=SCHEDULE)
        assert caplog.records == []  # whoever asked got the failure in the API's answer
        apply_refund_result(payment, credited, RefundResult("failed", failure_code="y"), now=NOW, schedule=SCHEDULE)
        apply_refund_result(payment, overpaid, RefundResult("failed", failure_code="z"), now=NOW, schedule=SCHEDULE)
    [on_note, on_overpayment] = caplog.records
    assert "still owed" in on_note.getMessage() and on_note.credit_note_id == str(credited.credit_note_id)
    assert "overpayment" in on_overpayment.getMessage() and "still owed" in on_overpayment.getMessage()
    assert payment.refunded_amount == 0
    assert (asked.gateway_idempotency_key, credited.gateway_idempotency_key) == (f"re_{asked.id}", "re_cn_1")


def test_a_success_for_a_payment_recorded_as_failed_changes_nothing_but_is_logged_as_an_error(caplog) -> None:
    payment = pending()
    apply_charge_result(payment, ChargeResult("failed", None, "charge_not_found", "soft"), at=NOW, now=NOW,
                        schedule=SCHEDULE)
    with caplog.at_level(logging.ERROR):
        assert apply_charge_result(payment, ChargeResult("succeeded", "ch_9"), at=NOW, now=NOW,
                                   schedule=SCHEDULE) is None
    assert (payment.status, payment.gateway_charge_id) == ("failed", None)
    [record] = caplog.records
    assert "already recorded as failed" in record.getMessage() and record.gateway_charge_id == "ch_9"
