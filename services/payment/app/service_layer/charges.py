"""Charging: choosing the payment method, writing the pending payment, settling it from the gateway's answer.

A payment row is written (and committed) before the gateway is called, under a gateway idempotency key
derived from what is being paid; its outcome is written in a second transaction together with the event
that announces it. No transaction is held open across the gateway call on the HTTP path.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from billing_shared.contracts import PaymentFailed, PaymentSucceeded
from billing_shared.db import driver_connection, sql_name
from billing_shared.events import Event
from billing_shared.ids import new_id

from ..adapters.gateway import ChargeResult, PaymentGateway
from ..db.models import InvoiceCredit, Payment, PaymentMethod, VoidedInvoice
from ..domain.payments import OPEN, check_transition, next_check_at

log = logging.getLogger(__name__)

NO_PAYMENT_METHOD = "no_payment_method"

# Statements on the charge path are built once: building one (and its cache key) per call costs more CPU
# than the round trip it makes. The method lookup, the payment's INSERT and its settling UPDATE run on the
# driver connection (billing_shared.db.driver_connection): through SQLAlchemy's execute each cost several
# times the client CPU.
_PAYMENTS = Payment.__table__
_COLUMNS = tuple(c.key for c in _PAYMENTS.columns)  # attribute keys, the same as the column names
_TABLE = sql_name(_PAYMENTS)
_INSERT_PAYMENT = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES ({', '.join(f'${n}' for n in range(1, len(_COLUMNS) + 1))})"
)
_USABLE_METHOD = (
    f"SELECT id, gateway_token FROM {sql_name(PaymentMethod.__table__)} WHERE customer_id = $1 AND detached_at IS NULL"
)
_DEFAULT_METHOD = f"{_USABLE_METHOD} AND is_default"
_ATTACHED_METHOD = f"{_USABLE_METHOD} AND id = $2"
_IS_VOIDED = f"EXISTS (SELECT 1 FROM {sql_name(VoidedInvoice.__table__)} WHERE invoice_id = $1)"
# An invoice as its automatic charge (attempt 1 of invoice.finalized) recorded it, with what its succeeded
# payments hold net of refunds, what its credit notes took off, and whether it was voided.
_KNOWN_INVOICE = (
    f"SELECT customer_id, currency, subscription_id, amount, "
    f"(SELECT coalesce(sum(amount - refunded_amount), 0) FROM {_TABLE} "
    f"WHERE invoice_id = $1 AND status = 'succeeded'), "
    f"(SELECT coalesce(sum(amount), 0) FROM {sql_name(InvoiceCredit.__table__)} WHERE invoice_id = $1), "
    f"{_IS_VOIDED} "
    f"FROM {_TABLE} WHERE invoice_id = $1 AND source = 'invoice' AND attempt = 1 LIMIT 1"
)
_VOIDED = f"SELECT {_IS_VOIDED}"
_UNDER_WAY = f"SELECT coalesce(sum(amount), 0) FROM {_TABLE} WHERE invoice_id = $1 AND status = 'pending'"


@dataclass(frozen=True, slots=True)
class ChargeableMethod:
    """What a charge needs of a payment method: its id (kept on the payment) and the gateway's card token."""

    id: uuid.UUID
    gateway_token: str


@dataclass(frozen=True, slots=True)
class ChargeTarget:
    """Everything about one charge attempt except its outcome."""

    customer_id: uuid.UUID
    amount: int
    currency: str
    source: str
    attempt: int
    gateway_key: str
    invoice_id: uuid.UUID | None = None
    subscription_id: uuid.UUID | None = None
    dunning_case_id: uuid.UUID | None = None
    original_payment_id: uuid.UUID | None = None
    description: str | None = None


async def default_method(session: AsyncSession, customer_id: uuid.UUID) -> ChargeableMethod | None:
    """The customer's default attached method (None if there is none)."""
    row = await (await driver_connection(session)).fetchrow(_DEFAULT_METHOD, customer_id)
    return ChargeableMethod(*row) if row else None


async def attached_method(
    session: AsyncSession, customer_id: uuid.UUID, method_id: uuid.UUID | None
) -> ChargeableMethod | None:
    """The customer's attached method with this id (None for another customer's or a detached one)."""
    if method_id is None:
        return None
    row = await (await driver_connection(session)).fetchrow(_ATTACHED_METHOD, customer_id, method_id)
    return ChargeableMethod(*row) if row else None


@dataclass(frozen=True, slots=True)
class KnownInvoice:
    """An invoice as this service knows it from charging it on invoice.finalized (every invoice finalized with an
    amount due is charged once, even when there is no card to charge: that payment fails)."""

    customer_id: uuid.UUID
    currency: str
    subscription_id: uuid.UUID | None
    amount_due: int  # when it was finalized
    collected: int  # by its succeeded payments, net of their refunds
    credited: int = 0  # by its credit notes since (a credit note's refund is in `collected`)
    voided: bool = False  # nothing is owed on it any more

    @property
    def owed(self) -> int:
        """What is still owed on it (not above 0 once it is paid)."""
        return self.amount_due - self.credited - self.collected

    @property
    def paid(self) -> bool:
        return self.owed <= 0


async def known_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> KnownInvoice | None:
    """The invoice this service charged under this id (None if it never did)."""
    row = await (await driver_connection(session)).fetchrow(_KNOWN_INVOICE, invoice_id)
    return KnownInvoice(*row) if row else None


async def hold_for_payment_by_hand(session: AsyncSession, invoice_id: uuid.UUID) -> int:
    """Keep other payments by hand of this invoice waiting until this transaction ends (its check of what is owed
    and the pending payment it lets in commit together), and return what the invoice's payments being charged right
    now will take."""
    driver = await driver_connection(session)
    await driver.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"invoice_payment:{invoice_id}")
    return await driver.fetchval(_UNDER_WAY, invoice_id)


async def invoice_voided(session: AsyncSession, invoice_id: uuid.UUID) -> bool:
    """Whether invoice.voided has told this service that nothing is owed on the invoice."""
    return bool(await (await driver_connection(session)).fetchval(_VOIDED, invoice_id))


async def as_announced(session: AsyncSession, event: Event) -> Event:
    """A payment's outcome as it is announced: the failure of a payment for an invoice other payments have paid
    meanwhile says so, and dunning opens no case for it. Only failures pay for the lookup."""
    if isinstance(event, PaymentFailed) and event.invoice_id is not None:
        invoice = await known_invoice(session, event.invoice_id)
        if invoice is not None and invoice.paid:
            return event.model_copy(update={"invoice_already_paid": True})
    return event


async def method_for_charge(
    session: AsyncSession, customer_id: uuid.UUID, preferred: uuid.UUID | None
) -> ChargeableMethod | None:
    """The preferred method if it is still usable, else the customer's default (None if neither)."""
    return await attached_method(session, customer_id, preferred) or await default_method(session, customer_id)


def new_payment(
    target: ChargeTarget,
    method: ChargeableMethod | None,
    *,
    at: datetime,
    now: datetime,
    pending_grace_s: int,
    payment_id: uuid.UUID | None = None,
) -> Payment:
    """A pending payment; the reconciler looks at it if nobody has settled it after `pending_grace_s`."""
    return Payment(
        id=payment_id or new_id(),
        customer_id=target.customer_id,
        payment_method_id=method.id if method else None,
        amount=target.amount,
        currency=target.currency,
        status="pending",
        source=target.source,
        attempt=target.attempt,
        invoice_id=target.invoice_id,
        subscription_id=target.subscription_id,
        dunning_case_id=target.dunning_case_id,
        original_payment_id=target.original_payment_id,
        description=target.description,
        gateway_idempotency_key=target.gateway_key,
        refunded_amount=0,
        reconcile_checks=0,
        next_reconcile_at=now + timedelta(seconds=pending_grace_s),
        created_at=at,
        updated_at=now,
    )


async def insert_payment(session: AsyncSession, payment: Payment) -> None:
    """Insert a new payment (from `new_payment`) in the session's transaction, without the ORM's unit of work;
    the object stays a plain value, outside the session."""
    driver = await driver_connection(session)
    await driver.execute(_INSERT_PAYMENT, *(getattr(payment, key) for key in _COLUMNS))


async def insert_payment_once(session: AsyncSession, payment: Payment) -> bool:
    """Insert unless a payment with its gateway key (or invoice and attempt) exists; True if inserted."""
    table = Payment.__table__
    values = {c.key: getattr(payment, c.key) for c in table.columns if getattr(payment, c.key, None) is not None}
    inserted = await session.execute(insert(table).values(**values).on_conflict_do_nothing().returning(table.c.id))
    return inserted.first() is not None


async def payment_by_key(session: AsyncSession, gateway_key: str, *, for_update: bool = False) -> Payment | None:
    stmt = select(Payment).where(Payment.gateway_idempotency_key == gateway_key)
    if for_update:
        stmt = stmt.with_for_update()
    return await session.scalar(stmt)


async def charge_at_gateway(gateway: PaymentGateway, payment: Payment, token: str) -> ChargeResult:
    description = payment.description or (f"invoice {payment.invoice_id}" if payment.invoice_id else None)
    return await gateway.charge(token, payment.amount, payment.currency, payment.gateway_idempotency_key, description)


def payment_event(payment: Payment) -> Event:
    """payment.succeeded or payment.failed for a settled payment."""
    common = dict(
        payment_id=payment.id,
        customer_id=payment.customer_id,
        amount=payment.amount,
        currency=payment.currency,
        invoice_id=payment.invoice_id,
        subscription_id=payment.subscription_id,
        dunning_case_id=payment.dunning_case_id,
        attempt=payment.attempt,
        payment_method_id=payment.payment_method_id,
    )
    if payment.status == "succeeded":
        return PaymentSucceeded(**common, gateway_charge_id=payment.gateway_charge_id)
    if payment.status == "failed":
        return PaymentFailed(
            **common,
            failure_code=payment.failure_code or "card_declined",
            decline_type=payment.decline_type or "hard",  # type: ignore[arg-type]
            failure_message=payment.failure_message or "",
            description=payment.description,
        )
    raise ValueError(f"payment {payment.id} is not settled ({payment.status})")


def fail_payment(payment: Payment, code: str, decline_type: str, message: str, *, at: datetime) -> Event:
    """Settle an open payment as failed without a gateway answer (no method, no charge ever made)."""
    check_transition(payment.status, "failed")
    payment.status = "failed"
    payment.failure_code = code
    payment.decline_type = decline_type
    payment.failure_message = message[:500]
    payment.next_reconcile_at = None
    payment.settled_at = at
    payment.updated_at = at
    return payment_event(payment)


def apply_charge_result(
    payment: Payment, result: ChargeResult, *, at: datetime, now: datetime, schedule: list[int]
) -> Event | None:
    """Record the gateway's answer on an open payment; the event to emit once it is settled, else None.

    An "unknown" answer moves a pending payment to unknown and schedules the first reconciliation check.
    A payment that is already settled is left as it is (whoever settled it emitted its event); a success for
    one settled as failed is logged as an error: the card was charged, and a person must refund or record it.
    """
    if payment.status not in OPEN:
        if payment.status == "failed" and result.status == "succeeded":
            log.error(
                "the gateway charged a payment already recorded as failed (%s): refund it or record it by hand",
                payment.failure_code,
                extra={"payment_id": str(payment.id), "gateway_charge_id": result.gateway_charge_id,
                       "amount": payment.amount, "currency": payment.currency},
            )
        return None
    if result.status == "unknown":
        if payment.status == "pending":
            check_transition("pending", "unknown")
            payment.status = "unknown"
            payment.reconcile_checks = 0
            payment.next_reconcile_at = next_check_at(schedule, 0, now)
            payment.updated_at = now
        return None
    check_transition(payment.status, result.status)
    payment.gateway_charge_id = result.gateway_charge_id
    if result.status == "failed":
        return fail_payment(
            payment, result.failure_code or "card_declined", result.decline_type or "hard", result.message or "", at=at
        )
    payment.status = "succeeded"
    payment.next_reconcile_at = None
    payment.settled_at = at
    payment.updated_at = at
    return payment_event(payment)


@lru_cache(maxsize=64)
def _update_if_status(columns: tuple[str, ...]) -> str:
    values = ", ".join(f"{key} = ${n}" for n, key in enumerate(columns, start=3))
    return f"UPDATE {_TABLE} SET {values} WHERE id = $1 AND status = $2"


async def apply_charge_result_if_unmoved(
    session: AsyncSession, payment: Payment, result: ChargeResult, *, at: datetime, now: datetime, schedule: list[int]
) -> tuple[bool, Event | None]:
    """`apply_charge_result` on a payment read earlier (a plain value, not locked), written by one UPDATE of
    the columns it changed that lands only while the row still has the status that was read: (written, event).

    While its status is unchanged nobody has settled the row, and apply_charge_result writes the same values
    to a locked, freshly read row, so this is the same as locking, reading and applying. Not written (the
    object is then stale): someone moved the payment first; lock it, read it again and apply to that.
    """
    was = payment.status
    before = {key: getattr(payment, key) for key in _COLUMNS}
    event = apply_charge_result(payment, result, at=at, now=now, schedule=schedule)
    changed = tuple(key for key in _COLUMNS if getattr(payment, key) != before[key])
    if not changed:
        return False, None
    driver = await driver_connection(session)
    values = (getattr(payment, key) for key in changed)
    written = await driver.execute(_update_if_status(changed), payment.id, was, *values) == "UPDATE 1"
    return written, event if written else None
