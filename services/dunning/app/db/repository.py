"""Queries on dunning cases: find-and-lock for consumers, claim-due for schedulers, reads for the API; and the
subscriptions known to be canceled."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ..domain.cases import CaseStatus
from .models import AddedPaymentMethod, Attempt, CanceledSubscription, DunningCase, VoidedInvoice


def case_key(invoice_id: uuid.UUID | None, payment_id: uuid.UUID | None) -> str:
    return f"invoice:{invoice_id}" if invoice_id is not None else f"payment:{payment_id}"


async def open_or_lock_case(session: AsyncSession, values: dict) -> tuple[DunningCase, bool]:
    """Insert the case for values["case_key"] unless it exists; return it locked, and whether it is new."""
    inserted = (
        await session.execute(
            insert(DunningCase)
            .values(**values)
            .on_conflict_do_nothing(index_elements=[DunningCase.case_key])
            .returning(DunningCase.id)
        )
    ).scalar_one_or_none()
    case = await lock_case_by_key(session, values["case_key"])
    assert case is not None
    return case, inserted is not None


async def lock_case(session: AsyncSession, case_id: uuid.UUID) -> DunningCase | None:
    return await session.scalar(
        select(DunningCase).where(DunningCase.id == case_id).with_for_update().execution_options(populate_existing=True)
    )


async def lock_case_for_payment(
    session: AsyncSession, dunning_case_id: uuid.UUID | None, invoice_id: uuid.UUID | None, payment_id: uuid.UUID
) -> DunningCase | None:
    """The case a payment belongs to: by the case id it carries, else its invoice, else the original payment."""
    if dunning_case_id is not None:
        case = await lock_case(session, dunning_case_id)
        if case is not None:
            return case
    return await lock_case_by_key(session, case_key(invoice_id, payment_id))


async def lock_case_by_key(session: AsyncSession, key: str) -> DunningCase | None:
    return await session.scalar(
        select(DunningCase).where(DunningCase.case_key == key).with_for_update().execution_options(populate_existing=True)
    )


async def lock_open_cases_of_customer(session: AsyncSession, customer_id: uuid.UUID) -> Sequence[DunningCase]:
    return await _lock_open_cases(session, DunningCase.customer_id == customer_id)


async def lock_open_cases_of_subscription(session: AsyncSession, subscription_id: uuid.UUID) -> Sequence[DunningCase]:
    return await _lock_open_cases(session, DunningCase.subscription_id == subscription_id)


async def _lock_open_cases(session: AsyncSession, whose: ColumnElement[bool]) -> Sequence[DunningCase]:
    """The open cases matching `whose`, locked in id order (so two transactions never lock them crosswise)."""
    stmt = (
        select(DunningCase)
        .where(whose, DunningCase.status == CaseStatus.OPEN)
        .order_by(DunningCase.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).all()


async def remember_canceled_subscription(
    session: AsyncSession, subscription_id: uuid.UUID, canceled_at: datetime
) -> None:
    """Record the subscription as canceled (the first record stays), holding its lock exclusively to the commit.

    Call it before looking for the subscription's open cases: a first failure recorded at the same time has
    either committed its case already (that look finds it) or waits for this commit and then sees the record.
    """
    await _lock_subscription(session, subscription_id, shared=False)
    await session.execute(
        insert(CanceledSubscription)
        .values(subscription_id=subscription_id, canceled_at=canceled_at)
        .on_conflict_do_nothing(index_elements=[CanceledSubscription.subscription_id])
    )


async def chase_ended_at(session: AsyncSession, case: DunningCase) -> datetime | None:
    """When what a new case would chase stopped being owed: its subscription canceled or its invoice voided, the
    earlier of the two; None if dunning heard of neither."""
    ended = []
    if case.subscription_id is not None:
        ended.append(await subscription_canceled_at(session, case.subscription_id))
    if case.invoice_id is not None:
        ended.append(await invoice_voided_at(session, case.invoice_id))
    known = [at for at in ended if at is not None]
    return min(known) if known else None


async def subscription_canceled_at(session: AsyncSession, subscription_id: uuid.UUID) -> datetime | None:
    """When the subscription was canceled, None if dunning has not heard of it; a cancellation being recorded
    meanwhile is waited for (shared lock, so failures of one subscription do not wait for each other)."""
    await _lock_subscription(session, subscription_id, shared=True)
    return await session.scalar(
        select(CanceledSubscription.canceled_at).where(CanceledSubscription.subscription_id == subscription_id)
    )


async def remember_voided_invoice(session: AsyncSession, invoice_id: uuid.UUID, voided_at: datetime) -> None:
    """Record the invoice as voided, holding its lock to the commit: call it before looking for its case (a first
    failure recorded at the same time has either committed its case, or waits and then sees the record)."""
    await _lock_invoice(session, invoice_id)
    await session.execute(
        insert(VoidedInvoice)
        .values(invoice_id=invoice_id, voided_at=voided_at)
        .on_conflict_do_nothing(index_elements=[VoidedInvoice.invoice_id])
    )


async def invoice_voided_at(session: AsyncSession, invoice_id: uuid.UUID) -> datetime | None:
    """When the invoice was voided, None if dunning has not heard of it (a void being recorded is waited for)."""
    await _lock_invoice(session, invoice_id)
    return await session.scalar(select(VoidedInvoice.voided_at).where(VoidedInvoice.invoice_id == invoice_id))


async def _lock_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> None:
    await session.execute(_XACT_LOCK, {"k": f"dunning.invoice:{invoice_id}"})


_XACT_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:k))")
_XACT_LOCK_SHARED = text("SELECT pg_advisory_xact_lock_shared(hashtext(:k))")


async def _lock_subscription(session: AsyncSession, subscription_id: uuid.UUID, *, shared: bool) -> None:
    # Under read committed a cancellation and a new case, each written without seeing the other's uncommitted
    # row, would both miss each other: this transaction-scoped lock orders them.
    lock = _XACT_LOCK_SHARED if shared else _XACT_LOCK
    await session.execute(lock, {"k": f"dunning.subscription:{subscription_id}"})


async def claim_due(session: AsyncSession, as_of: datetime, limit: int) -> Sequence[DunningCase]:
    """Open cases with a retry due by `as_of`, locked; rows another replica holds are skipped."""
    stmt = (
        select(DunningCase)
        .where(
            DunningCase.status == CaseStatus.OPEN,
            DunningCase.next_retry_at.is_not(None),
            DunningCase.next_retry_at <= as_of,
        )
        .order_by(DunningCase.next_retry_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).all()


async def claim_expired_waits(session: AsyncSession, as_of: datetime, limit: int) -> Sequence[DunningCase]:
    """Open hard-declined cases whose wait for a new payment method ended by `as_of`, locked."""
    stmt = (
        select(DunningCase)
        .where(
            DunningCase.status == CaseStatus.OPEN,
            DunningCase.wait_until.is_not(None),
            DunningCase.wait_until <= as_of,
        )
        .order_by(DunningCase.wait_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).all()


async def attempt_of(session: AsyncSession, case_id: uuid.UUID, attempt: int) -> Attempt | None:
    return await session.scalar(select(Attempt).where(Attempt.case_id == case_id, Attempt.attempt == attempt))


async def add_attempt(session: AsyncSession, **values) -> bool:
    """Insert an attempt row; False if this attempt number of the case is already recorded."""
    inserted = (
        await session.execute(
            insert(Attempt)
            .values(**values)
            .on_conflict_do_nothing(constraint="uq_attempts_case_attempt")
            .returning(Attempt.id)
        )
    ).scalar_one_or_none()
    return inserted is not None


async def timeline(session: AsyncSession, case_id: uuid.UUID) -> Sequence[Attempt]:
    return (await session.scalars(select(Attempt).where(Attempt.case_id == case_id).order_by(Attempt.attempt))).all()


def cases_query(customer_id: uuid.UUID | None, status: CaseStatus | None) -> Select:
    stmt = select(DunningCase)
    if customer_id is not None:
        stmt = stmt.where(DunningCase.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(DunningCase.status == status)
    return stmt


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(DunningCase.status, func.count()).group_by(DunningCase.status))
    counts = {s.value: 0 for s in CaseStatus}
    counts.update({status: n for status, n in rows})
    return counts


async def remember_payment_method(
    session: AsyncSession, payment_method_id: uuid.UUID, customer_id: uuid.UUID, added_at: datetime
) -> None:
    await session.execute(
        insert(AddedPaymentMethod)
        .values(payment_method_id=payment_method_id, customer_id=customer_id, added_at=added_at)
        .on_conflict_do_nothing(index_elements=[AddedPaymentMethod.payment_method_id])
    )


async def payment_method_added_since(
    session: AsyncSession, customer_id: uuid.UUID, since: datetime, other_than: uuid.UUID | None
) -> uuid.UUID | None:
    """The newest payment method the customer added at or after `since`, other than `other_than`."""
    stmt = select(AddedPaymentMethod.payment_method_id).where(
        AddedPaymentMethod.customer_id == customer_id, AddedPaymentMethod.added_at >= since
    )
    if other_than is not None:
        stmt = stmt.where(AddedPaymentMethod.payment_method_id != other_than)
    return await session.scalar(stmt.order_by(AddedPaymentMethod.added_at.desc()).limit(1))


async def last_failure_at(session: AsyncSession, case_id: uuid.UUID) -> datetime | None:
    """When the case's latest failed attempt failed."""
    return await session.scalar(
        select(func.max(Attempt.failed_at)).where(Attempt.case_id == case_id, Attempt.outcome == "failed")
    )
