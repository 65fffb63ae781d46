"""Refunds of a payment: partial or full, never more than was captured, one per Idempotency-Key.

Giving money back is the merchant's decision: only an admin creates a refund (what a customer is owed for a
canceled subscription reaches it as a credit note's refund). A payment's customer may list its refunds.
"""

from __future__ import annotations

import uuid

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from billing_shared import clock
from billing_shared.auth import AdminPrincipal, CurrentPrincipal, Principal
from billing_shared.errors import ApiError, not_found
from billing_shared.idempotency import Claim
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..context import PaymentContext
from ..db.models import Payment, Refund
from ..domain.payments import RefundRefused, refund_amount
from ..service_layer.refunds import apply_refund_result, refund_at_gateway, reserve_refund
from .deps import Context, IdempotencyKey, idempotency_scope
from .schemas import RefundCreate, RefundOut, RefundPage, RefundReason, Status

router = APIRouter(prefix="/api/payments/{payment_id}/refunds", tags=["refunds"])
every_payments_router = APIRouter(prefix="/api/refunds", tags=["refunds"])

_REFUSAL_STATUS = {"amount_too_large": 422, "invalid_amount": 422}


@router.post("", status_code=201, response_model=RefundOut, summary="Refund a payment (admin)")
async def create_refund(
    payment_id: uuid.UUID,
    ctx: Context,
    principal: AdminPrincipal,
    body: RefundCreate | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    body = body or RefundCreate()
    request = {"payment_id": str(payment_id), **body.model_dump(mode="json")}
    claim = await ctx.keys.claim(idempotency_scope(principal), idempotency_key, request)
    if claim.is_replay:
        return JSONResponse(claim.replay_body, status_code=claim.replay_status)
    try:
        if claim.resource_id is not None:
            refund_id = claim.resource_id
        else:
            refund_id = await _reserve(ctx, claim, payment_id, body.amount, principal)
    except ApiError:
        await ctx.keys.release(claim)
        raise

    async with ctx.db.reads() as session:
        refund = await session.get(Refund, refund_id)
        payment = await session.get(Payment, refund.payment_id) if refund else None
    assert refund is not None and payment is not None
    result = await refund_at_gateway(ctx.gateway, payment, refund) if refund.status == "pending" else None

    async with ctx.db.uow() as uow:
        payment = await uow.session.get(Payment, payment.id, with_for_update=True)
        refund = await uow.session.get(Refund, refund_id, with_for_update=True)
        assert payment is not None and refund is not None
        if result is not None:
            now = clock.now(payment.customer_id)
            event = apply_refund_result(payment, refund, result, now=now, schedule=ctx.settings.payment_reconcile_after_s)
            if event is not None:
                uow.emit(event, occurred_at=now)
        response = RefundOut.model_validate(refund).model_dump(mode="json")
        await ctx.keys.complete(uow.session, claim, 201, response, refund.id)
        await uow.commit()
    return JSONResponse(response, status_code=201)


async def _reserve(
    ctx: PaymentContext, claim: Claim, payment_id: uuid.UUID, requested: int | None, principal: Principal
) -> uuid.UUID:
    """Lock the payment, check what is left, reserve the refund; the refund's id."""
    async with ctx.db.uow() as uow:
        # The row lock serialises concurrent refunds of one payment: each sees the others' reservations.
        payment = await uow.session.get(Payment, payment_id, with_for_update=True)
        if payment is None or not principal.can_see(payment.customer_id):
            raise not_found("payment")
        try:
            amount = refund_amount(payment.status, payment.amount, payment.refunded_amount, requested)
        except RefundRefused as exc:
            status = _REFUSAL_STATUS.get(exc.code, 409)
            raise ApiError(status, exc.code, exc.message, field="amount" if status == 422 else None) from None
        refund = reserve_refund(
            payment, amount, now=clock.now(payment.customer_id),
            pending_grace_s=ctx.settings.payment_pending_reconcile_after_s,
        )
        uow.session.add(refund)
        await uow.session.flush()
        await ctx.keys.attach_resource(uow.session, claim, refund.id)
        await uow.commit()
        return refund.id


@router.get("", response_model=RefundPage, summary="List a payment's refunds (its customer, or admin)")
async def list_refunds(
    payment_id: uuid.UUID,
    ctx: Context,
    principal: CurrentPrincipal,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> RefundPage:
    async with ctx.db.reads() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None or not principal.can_see(payment.customer_id):
            raise not_found("payment")
        rows, next_cursor = await fetch_page(
            session, select(Refund).where(Refund.payment_id == payment_id), Refund.id, cursor, limit
        )
    return RefundPage(
        data=[RefundOut.model_validate(r) for r in rows], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@every_payments_router.get(
    "", response_model=RefundPage, summary="List refunds across payments (admin: every customer's; a user: its own)"
)
async def list_every_payments_refunds(
    ctx: Context,
    principal: CurrentPrincipal,
    customer_id: uuid.UUID | None = None,
    status: Status | None = None,
    reason: RefundReason | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> RefundPage:
    """`?status=failed&reason=credit_note` (or `overpayment`) lists what customers are still owed: refunds this
    service owed them that the gateway refused, to be made by hand."""
    customer_id = principal.customer_to_list(customer_id)
    stmt = select(Refund)
    if customer_id is not None:
        stmt = stmt.where(Refund.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(Refund.status == status)
    if reason is not None:
        stmt = stmt.where(Refund.reason == reason)
    async with ctx.db.reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, Refund.id, cursor, limit)
    return RefundPage(
        data=[RefundOut.model_validate(r) for r in rows], has_more=next_cursor is not None, next_cursor=next_cursor
    )
