"""What happens to a locked dunning case, and the events that announce it (same transaction).

Every function takes the unit of work of the caller (a consumer or the scheduler), changes the case
and emits its events at the business time `at`; none of them commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from billing_shared import clock
from billing_shared.contracts import (
    DunningExhausted,
    DunningFinalNotice,
    DunningRecovered,
    DunningRetryDue,
    DunningRetryScheduled,
    PaymentFailed,
)
from billing_shared.db import UnitOfWork
from billing_shared.ids import new_id

from .db import repository
from .db.models import DunningCase
from .domain.cases import AwaitPaymentMethod, CaseStatus, Exhausted, Retry, is_new_failure, next_step, transition


def _facts(case: DunningCase) -> dict[str, Any]:
    return {
        "case_id": case.id,
        "customer_id": case.customer_id,
        "invoice_id": case.invoice_id,
        "payment_id": case.payment_id,
        "subscription_id": case.subscription_id,
        "amount": case.amount,
        "currency": case.currency,
        "description": case.description,
    }


def _touch(case: DunningCase) -> None:
    case.updated_at = clock.now(case.customer_id)


async def open_case(uow: UnitOfWork, failed: PaymentFailed, at: datetime) -> tuple[DunningCase, bool]:
    """The case for this failure's invoice (or one-off payment), created if new, locked."""
    return await repository.open_or_lock_case(
        uow.session,
        {
            "id": new_id(),
            "case_key": repository.case_key(failed.invoice_id, failed.payment_id),
            "customer_id": failed.customer_id,
            "invoice_id": failed.invoice_id,
            "payment_id": failed.payment_id,
            "subscription_id": failed.subscription_id,
            "amount": failed.amount,
            "currency": failed.currency.upper(),
            "description": failed.description,
            "status": CaseStatus.OPEN.value,
            "failures": 0,
            "waiting_for_payment_method": False,
            "opened_at": at,
        },
    )


async def record_failure(
    uow: UnitOfWork,
    case: DunningCase,
    failed: PaymentFailed,
    at: datetime,
    schedule: Sequence[timedelta],
    *,
    chase_ended_at: datetime | None = None,
) -> bool:
    """Record a failed attempt and take the next step; False if nothing changed (already recorded, or closed).

    The next step of a case whose subscription was canceled or invoice voided already (`chase_ended_at`) is to
    cancel it.
    """
    attempt = case.failures + 1
    if case.status != CaseStatus.OPEN or (case.failures > 0 and not is_new_failure(failed.attempt, case.failures)):
        return False
    pending = await repository.attempt_of(uow.session, case.id, attempt)
    details = {
        "outcome": "failed",
        "failed_at": at,
        "payment_id": failed.payment_id,
        "failure_code": failed.failure_code[:100],
        "failure_message": failed.failure_message[:500] or None,
        "decline_type": failed.decline_type,
    }
    if pending is not None:
        for key, value in details.items():
            setattr(pending, key, value)
        pending.payment_method_id = pending.payment_method_id or failed.payment_method_id
    else:
        await repository.add_attempt(
            uow.session,
            id=new_id(),
            case_id=case.id,
            attempt=attempt,
            trigger="initial" if attempt == 1 else "unscheduled",
            payment_method_id=failed.payment_method_id,
            **details,
        )
    case.failures = attempt
    case.last_failure_code = failed.failure_code[:100]
    case.next_retry_at = None
    case.wait_until = None
    case.waiting_for_payment_method = False
    new_method, case.retry_payment_method_id = case.retry_payment_method_id, None
    if new_method is None and not failed.invoice_already_paid:
        # A card added after this attempt failed, whose payment_method.added dunning heard first.
        new_method = await repository.payment_method_added_since(
            uow.session, case.customer_id, at, other_than=failed.payment_method_id
        )
    _touch(case)

    if chase_ended_at is not None:
        # Its subscription.canceled or invoice.voided came first (two services' events come in any order): end as if
        # it had come after this failure. No retry, so no charge, and no event: no "next try on ..." or suspension
        # email.
        return cancel(case, max(at, chase_ended_at))
    if failed.invoice_already_paid:
        # Another payment paid the invoice while this attempt was under way (its invoice.paid, a hop longer, may
        # still be on the way and closes the case): no retry, no "payment failed" email, no exhaustion.
        return True
    step = next_step(case.failures, schedule, at, failed.decline_type)
    if new_method is not None and new_method != failed.payment_method_id:
        # A method added while this attempt was under way was not tried yet: try it now, as its arrival asked, even
        # after the last scheduled attempt (the final notice asked for just that).
        await dispatch_retry(uow, case, at, trigger="payment_method", payment_method_id=new_method)
    elif isinstance(step, Exhausted):
        exhaust(uow, case, at)
    elif isinstance(step, AwaitPaymentMethod):
        case.waiting_for_payment_method = True
        case.wait_until = step.until
        uow.emit(
            DunningRetryScheduled(
                **_facts(case), failures=case.failures, next_retry_at=None, waiting_for_new_payment_method=True,
                wait_until=step.until,
            ),
            occurred_at=at,
        )
    else:
        assert isinstance(step, Retry)
        case.next_retry_at = step.at
        uow.emit(
            DunningRetryScheduled(**_facts(case), failures=case.failures, next_retry_at=step.at, final=step.final),
            occurred_at=at,
        )
        if step.final:
            uow.emit(DunningFinalNotice(**_facts(case), retry_at=step.at), occurred_at=at)
    return True


def exhaust(uow: UnitOfWork, case: DunningCase, at: datetime) -> None:
    case.status = transition(case.status, CaseStatus.EXHAUSTED)
    case.next_retry_at = None
    case.wait_until = None
    case.closed_at = at
    _touch(case)
    uow.emit(DunningExhausted(**_facts(case), failures=case.failures), occurred_at=at)


async def recover(
    uow: UnitOfWork, case: DunningCase, at: datetime, payment_id: uuid.UUID | None, attempt: int | None = None
) -> bool:
    """The debt was paid: mark the attempt that paid it, close the case, announce dunning.recovered.

    The attempt is marked even on a closed case: its invoice.paid may have been applied first and closed it.
    """
    if attempt is not None:  # a retry of this case paid: mark its attempt on the timeline
        paid = await repository.attempt_of(uow.session, case.id, attempt)
        if paid is not None and paid.outcome == "pending":
            paid.outcome, paid.succeeded_at, paid.payment_id = "succeeded", at, payment_id
    if case.status != CaseStatus.OPEN:
        return False
    case.status = transition(case.status, CaseStatus.RECOVERED)
    case.next_retry_at = None
    case.wait_until = None
    case.waiting_for_payment_method = False
    case.closed_at = at
    case.recovered_by_payment_id = payment_id
    _touch(case)
    uow.emit(DunningRecovered(**_facts(case), recovered_by_payment_id=payment_id), occurred_at=at)
    return True


def reprice(case: DunningCase, amount_due: int) -> None:
    """An open case's debt changed (a credit note on its invoice): its next retries ask for `amount_due`."""
    if case.status == CaseStatus.OPEN and case.amount != amount_due:
        case.amount = amount_due
        _touch(case)


def cancel(case: DunningCase, at: datetime) -> bool:
    """Stop chasing (invoice voided, subscription canceled, or an admin decision); no event, nobody needs to act
    on it."""
    if case.status != CaseStatus.OPEN:
        return False
    case.status = transition(case.status, CaseStatus.CANCELED)
    case.next_retry_at = None
    case.wait_until = None
    case.waiting_for_payment_method = False
    case.closed_at = at
    _touch(case)
    return True


async def dispatch_retry(
    uow: UnitOfWork,
    case: DunningCase,
    due_at: datetime,
    *,
    trigger: str,
    dispatched_at: datetime | None = None,
    payment_method_id: uuid.UUID | None = None,
) -> bool:
    """Ask the payment service to charge again (dunning.retry_due at `due_at`), once per attempt number."""
    if case.status != CaseStatus.OPEN:
        return False
    attempt = case.failures + 1
    added = await repository.add_attempt(
        uow.session,
        id=new_id(),
        case_id=case.id,
        attempt=attempt,
        trigger=trigger,
        outcome="pending",
        due_at=due_at,
        dispatched_at=dispatched_at or due_at,
        payment_method_id=payment_method_id,
    )
    case.next_retry_at = None  # the slot is taken either way
    if not added:  # this attempt is already on its way
        return False
    case.wait_until = None
    case.waiting_for_payment_method = False
    _touch(case)
    uow.emit(DunningRetryDue(**_facts(case), attempt=attempt, payment_method_id=payment_method_id), occurred_at=due_at)
    return True
