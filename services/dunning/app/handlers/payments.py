"""payment.failed opens or advances a case (a case of a canceled subscription or a voided invoice opens canceled;
none opens for an invoice another payment has paid);
payment.succeeded recovers it; a new card retries now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from billing_shared.clock import ensure_utc
from billing_shared.consumer import Handler
from billing_shared.contracts import PaymentFailed, PaymentMethodAdded, PaymentSucceeded
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from .. import operations
from ..db import repository


def payment_failed_handler(schedule: Sequence[timedelta]) -> Handler:
    async def handle_payment_failed(envelope: Envelope, uow: UnitOfWork) -> None:
        failed = envelope.payload_as(PaymentFailed)
        at = ensure_utc(envelope.occurred_at)
        case = None
        if failed.dunning_case_id is not None:
            case = await repository.lock_case(uow.session, failed.dunning_case_id)
        chase_ended_at = None
        if case is None:
            if failed.invoice_already_paid:
                return  # another payment paid the invoice (its invoice.paid may have come before this): no debt
            case, opened = await operations.open_case(uow, failed, at)
            if opened:
                # Only a new case can have missed the cancel or void that ends it: those closed every case they saw.
                chase_ended_at = await repository.chase_ended_at(uow.session, case)
        await operations.record_failure(uow, case, failed, at, schedule, chase_ended_at=chase_ended_at)

    return handle_payment_failed


async def handle_payment_succeeded(envelope: Envelope, uow: UnitOfWork) -> None:
    paid = envelope.payload_as(PaymentSucceeded)
    case = await repository.lock_case_for_payment(uow.session, paid.dunning_case_id, paid.invoice_id, paid.payment_id)
    if case is not None:
        attempt = paid.attempt if paid.dunning_case_id == case.id else None
        await operations.recover(uow, case, ensure_utc(envelope.occurred_at), paid.payment_id, attempt)


async def handle_payment_method_added(envelope: Envelope, uow: UnitOfWork) -> None:
    added = envelope.payload_as(PaymentMethodAdded)
    at = ensure_utc(envelope.occurred_at)
    # Remembered: a failure this card came after, heard only later, is retried on it then (see record_failure).
    await repository.remember_payment_method(uow.session, added.payment_method_id, added.customer_id, at)
    for case in await repository.lock_open_cases_of_customer(uow.session, added.customer_id):
        failed_at = await repository.last_failure_at(uow.session, case.id)
        if failed_at is not None and at < failed_at:
            continue  # the card was there when the case's latest attempt failed (maybe charged in it): not new
        if not await operations.dispatch_retry(
            uow, case, at, trigger="payment_method", payment_method_id=added.payment_method_id
        ):
            # A retry is under way, most likely on the old method: the new one is tried if that retry fails.
            case.retry_payment_method_id = added.payment_method_id
