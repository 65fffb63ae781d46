"""The reconciler: settles charges whose outcome is unknown (or whose request died) by asking the gateway.

Due payments are claimed with FOR UPDATE SKIP LOCKED and leased (next check pushed out) in one short
transaction, so any number of replicas can run it; each is then looked up with `retrieve(idempotency key)`
outside any transaction and settled in its own, with the same events as a live charge. It never charges:
a charge the gateway has no trace of is only declared failed after the whole schedule has passed and, for a
pending one, once in real time the request that made it cannot still be in flight, so dunning may retry it under
a new attempt key. An open refund is
looked up by its key first and re-sent under that key only if the gateway has none: a provider forgets its
idempotency keys after a while (Stripe: 24 h), and a refund re-sent after that would be made twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from billing_shared import clock
from billing_shared.ids import id_time

from ..adapters.gateway import ChargeResult, GatewayUnavailable, RefundResult
from ..context import PaymentContext
from ..db.models import Payment, Refund
from ..domain.payments import OPEN, next_check_at, schedule_exhausted
from .charges import apply_charge_result, as_announced, fail_payment
from .refunds import apply_refund_result, refund_at_gateway

log = logging.getLogger(__name__)

CHARGE_NOT_FOUND = "charge_not_found"
_UNAVAILABLE = object()


@dataclass
class ReconcileReport:
    checked: int = 0
    settled: int = 0
    rescheduled: int = 0
    refunds_checked: int = 0
    refunds_settled: int = 0


def _lease(ctx: PaymentContext) -> timedelta:
    # Long enough for one gateway round trip per claimed row; a crashed reconciler's rows come back after it.
    return timedelta(seconds=60 + 2 * ctx.settings.payment_gateway_timeout_s)


async def _claim_due(ctx: PaymentContext, model: type[Payment] | type[Refund], as_of: datetime, limit: int) -> list[uuid.UUID]:
    async with ctx.db.uow() as uow:
        ids = list(
            await uow.session.scalars(
                select(model.id)
                .where(model.status.in_(sorted(OPEN)), model.next_reconcile_at <= as_of)
                .order_by(model.next_reconcile_at)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            await uow.session.execute(
                update(model).where(model.id.in_(ids)).values(next_reconcile_at=as_of + _lease(ctx))
            )
        await uow.commit()
    return ids


async def reconcile_due(ctx: PaymentContext, as_of: datetime | None = None, limit: int | None = None) -> ReconcileReport:
    """Check every open payment and refund due by `as_of` once; what was found."""
    as_of = clock.ensure_utc(as_of) if as_of else clock.now()
    limit = limit or ctx.settings.payment_reconcile_batch
    report = ReconcileReport()
    for payment_id in await _claim_due(ctx, Payment, as_of, limit):
        report.checked += 1
        if await _reconcile_payment(ctx, payment_id, as_of):
            report.settled += 1
        else:
            report.rescheduled += 1
    for refund_id in await _claim_due(ctx, Refund, as_of, limit):
        report.refunds_checked += 1
        if await _reconcile_refund(ctx, refund_id, as_of):
            report.refunds_settled += 1
    return report


async def _reconcile_payment(ctx: PaymentContext, payment_id: uuid.UUID, as_of: datetime) -> bool:
    async with ctx.db.reads() as session:
        key = await session.scalar(select(Payment.gateway_idempotency_key).where(Payment.id == payment_id))
    found: ChargeResult | None | object
    try:
        found = await ctx.gateway.retrieve(key)
    except GatewayUnavailable as exc:
        log.warning("gateway unavailable during reconciliation", extra={"payment_id": str(payment_id), "reason": str(exc)})
        found = _UNAVAILABLE
    schedule = ctx.settings.payment_reconcile_after_s
    async with ctx.db.uow() as uow:
        payment = await uow.session.get(Payment, payment_id, with_for_update=True)
        if payment is None or payment.status not in OPEN:
            return False
        event = None
        if isinstance(found, ChargeResult):
            if found.status == "unknown":  # not a provider answer we understand; ask again later
                found = _UNAVAILABLE
            else:
                if payment.status == "pending":
                    payment.status = "unknown"  # pending → unknown → settled keeps to the allowed transitions
                event = apply_charge_result(payment, found, at=as_of, now=as_of, schedule=schedule)
        in_flight_for = _may_still_be_in_flight(ctx, payment) if event is None and found is None else None
        if in_flight_for:
            # A run with an as_of ahead of now (a simulated week) would go through the whole schedule in no real
            # time, while the request that made this payment may still be waiting for the gateway: it stays that
            # request's, and counts no check, until it cannot be.
            payment.next_reconcile_at = as_of + in_flight_for
        elif event is None:
            checks = payment.reconcile_checks + 1
            if found is None and schedule_exhausted(schedule, checks):
                if payment.status == "pending":
                    payment.status = "unknown"
                event = fail_payment(
                    payment, CHARGE_NOT_FOUND, "soft", "the gateway has no charge under this payment's key", at=as_of
                )
            else:
                if payment.status == "pending":
                    payment.status = "unknown"  # the request that owned it is gone: the outcome is now unknown
                payment.reconcile_checks = checks
                payment.next_reconcile_at = next_check_at(schedule, checks, as_of)
                payment.updated_at = as_of
        if event is not None:
            uow.emit(await as_announced(uow.session, event), occurred_at=as_of)
        await uow.commit()
        return event is not None


def _may_still_be_in_flight(ctx: PaymentContext, payment: Payment) -> timedelta | None:
    """How much longer, in real time, the request that made this pending payment may still be waiting for the
    gateway (its id is a UUIDv7: the instant it was made); None once it cannot be, or once that request gave up
    (unknown: it asked no more)."""
    made = id_time(payment.id)
    if payment.status != "pending" or made is None:  # its request gave up (unknown), or a settled one
        return None
    left = made + timedelta(seconds=ctx.settings.payment_pending_reconcile_after_s) - clock.wall_now()
    return left if left > timedelta(0) else None


async def _reconcile_refund(ctx: PaymentContext, refund_id: uuid.UUID, as_of: datetime) -> bool:
    async with ctx.db.reads() as session:
        refund = await session.get(Refund, refund_id)
        payment = await session.get(Payment, refund.payment_id) if refund else None
    if refund is None or payment is None or refund.status not in OPEN:
        return False
    try:
        result = await ctx.gateway.retrieve_refund(refund.gateway_idempotency_key)
    except GatewayUnavailable as exc:
        result = RefundResult("unknown", message=str(exc))  # asked again at the next check
    if result is None:  # the gateway never made it: send it (again), under its own key
        result = await refund_at_gateway(ctx.gateway, payment, refund)
    schedule = ctx.settings.payment_reconcile_after_s
    async with ctx.db.uow() as uow:
        payment = await uow.session.get(Payment, payment.id, with_for_update=True)
        refund = await uow.session.get(Refund, refund_id, with_for_update=True)
        assert payment is not None and refund is not None
        if refund.status not in OPEN:
            return False
        if result.status == "unknown":
            refund.status = "unknown"
            refund.reconcile_checks += 1
            refund.next_reconcile_at = next_check_at(schedule, refund.reconcile_checks, as_of)
            refund.updated_at = as_of
            event = None
        else:
            event = apply_refund_result(payment, refund, result, now=as_of, schedule=schedule)
            if event is not None:
                uow.emit(event, occurred_at=as_of)
        await uow.commit()
        return refund.status not in OPEN


async def run_reconciler(ctx: PaymentContext) -> None:
    """The periodic task (started only where RUN_SCHEDULER is true): reconcile, sleep. (Old idempotency keys go
    with the plumbing retention every service runs.)"""
    interval = ctx.settings.payment_reconcile_interval_s
    while True:
        try:
            report = await reconcile_due(ctx)
            if report.checked or report.refunds_checked:
                log.info("reconciled", extra=report.__dict__)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("reconciler iteration failed")
        await asyncio.sleep(interval)
