"""One-off payments: POST with an Idempotency-Key (Stripe semantics), read and list.

A declined card is not an HTTP error here: the payment resource was created, so the answer is 201 with
`status: "failed"` and the failure code (Stripe answers 402; we keep every charge outcome in one shape, and
a replay returns the same 201). A lost gateway answer is 201 with `status: "unknown"` until reconciled.
A first request commits twice: its key claimed with the pending payment, then the outcome with the response.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing_shared import clock
from billing_shared.auth import CurrentPrincipal, Principal
from billing_shared.db import UnitOfWork
from billing_shared.errors import ApiError, not_found
from billing_shared.idempotency import Claim
from billing_shared.ids import new_id
from billing_shared.money import format_money
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..adapters.gateway import ChargeResult
from ..context import PaymentContext
from ..db.models import Payment
from ..domain.payments import payment_charge_key
from ..service_layer.charges import (
    ChargeTarget,
    apply_charge_result,
    apply_charge_result_if_unmoved,
    as_announced,
    attached_method,
    charge_at_gateway,
    default_method,
    hold_for_payment_by_hand,
    insert_payment,
    known_invoice,
    new_payment,
)
from .deps import Context, IdempotencyKey, check_customer, idempotency_scope
from .schemas import PaymentCreate, PaymentOut, PaymentPage, Status

router = APIRouter(prefix="/api/payments", tags=["payments"])


@router.post("", status_code=201, response_model=PaymentOut, summary="Charge a customer once per Idempotency-Key")
async def create_payment(
    body: PaymentCreate, ctx: Context, principal: CurrentPrincipal, idempotency_key: IdempotencyKey = None
) -> Response:
    scope, request = idempotency_scope(principal), body.model_dump(mode="json")
    fresh = await _claim_key_and_start_payment(ctx, principal, scope, idempotency_key, body, request)
    if fresh is not None:
        claim, (started, token) = fresh
    else:  # the key was used before: IdempotencyKeys replays, refuses, waits or hands over a dead request's claim
        claim = await ctx.keys.claim(scope, idempotency_key, request)
        if claim.is_replay:
            return JSONResponse(claim.replay_body, status_code=claim.replay_status)
        try:
            check_customer(principal, body.customer_id)
            if claim.resource_id is not None:  # the request that claimed this key died: resume its payment
                started, token = await _resume(ctx, claim.resource_id)
            else:
                started, token = await _start_payment(ctx, claim, body)
        except ApiError:
            await ctx.keys.release(claim)
            raise
    # No transaction is open across the gateway call.
    result = await charge_at_gateway(ctx.gateway, started, token) if token is not None else None
    async with ctx.db.uow() as uow:
        payment = await _settle(ctx, uow, started, result)
        response = PaymentOut.model_validate(payment).model_dump_json()  # serialised once: sent and stored
        await ctx.keys.complete_json(uow.session, claim, 201, response, payment.id)
        await uow.commit()
    return Response(response, status_code=201, media_type="application/json")


async def _settle(ctx: PaymentContext, uow: UnitOfWork, started: Payment, result: ChargeResult | None) -> Payment:
    """Record the gateway's answer (if any) in the unit of work; the payment as it will be committed.

    Usually one conditional UPDATE of the payment this request wrote; if anyone moved it meanwhile (the
    reconciler), or there is no answer to record, the row is locked and read, and the answer applied to that.
    """
    schedule = ctx.settings.payment_reconcile_after_s
    if result is not None and started.status == "pending":
        now = clock.now(started.customer_id)
        written, event = await apply_charge_result_if_unmoved(
            uow.session, started, result, at=now, now=now, schedule=schedule
        )
        if written:
            if event is not None:
                uow.emit(await as_announced(uow.session, event), occurred_at=now)
            return started
    payment = await uow.session.get(Payment, started.id, with_for_update=True)
    assert payment is not None
    if result is not None:
        now = clock.now(payment.customer_id)
        event = apply_charge_result(payment, result, at=now, now=now, schedule=schedule)
        if event is not None:
            uow.emit(await as_announced(uow.session, event), occurred_at=now)
    return payment


async def _claim_key_and_start_payment(
    ctx: PaymentContext, principal: Principal, scope: str, key: str | None, body: PaymentCreate, request: dict
) -> tuple[Claim, tuple[Payment, str]] | None:
    """The usual first request, in ONE transaction: claim the key (in progress, already tied to the payment)
    and write the pending payment. None if the key exists. Bad input rolls both back: nothing is written.

    A concurrent request with the same key waits on the key's unique index until this commits, then finds it
    (as it would find a claim committed on its own); a crash leaves either nothing or a claim it can resume.
    """
    async with ctx.db.uow() as uow:
        payment_id = new_id()
        claim = await ctx.keys.try_claim(uow.session, scope, key, request, payment_id)
        if claim is None:
            return None
        check_customer(principal, body.customer_id)
        payment, token = await _new_pending_payment(ctx, uow.session, body, payment_id)
        await uow.commit()
    return claim, (payment, token)


async def _start_payment(ctx: PaymentContext, claim: Claim, body: PaymentCreate) -> tuple[Payment, str]:
    """Write the pending payment and tie it to an already committed claim; (payment, card token)."""
    async with ctx.db.uow() as uow:
        payment, token = await _new_pending_payment(ctx, uow.session, body, new_id())
        await ctx.keys.attach_resource(uow.session, claim, payment.id)
        await uow.commit()
        return payment, token


async def _new_pending_payment(
    ctx: PaymentContext, session: AsyncSession, body: PaymentCreate, payment_id: uuid.UUID
) -> tuple[Payment, str]:
    """Add the pending payment to the session (422 if there is no card to charge); (payment, card token)."""
    if body.payment_method_id is not None:
        method = await attached_method(session, body.customer_id, body.payment_method_id)
        if method is None:
            raise ApiError(422, "invalid_payment_method", "no such payment method for this customer",
                           field="payment_method_id")
    else:
        method = await default_method(session, body.customer_id)
        if method is None:
            raise ApiError(422, "no_payment_method", "the customer has no default payment method; "
                           "add one or pass payment_method_id", field="payment_method_id")
    subscription_id = await _payable_invoice(session, body) if body.invoice_id is not None else None
    now = clock.now(body.customer_id)
    payment = new_payment(
        _target(body, payment_id, subscription_id), method, at=now, now=now,
        pending_grace_s=ctx.settings.payment_pending_reconcile_after_s, payment_id=payment_id,
    )
    await insert_payment(session, payment)
    return payment, method.gateway_token


async def _payable_invoice(session: AsyncSession, body: PaymentCreate) -> uuid.UUID | None:
    """Check that the invoice a payment by hand names may be paid so: one this service charged when it was
    finalized, of this customer, in this currency, not void nor paid yet. A payment the invoice service could not apply
    (another customer's invoice, another currency, no such invoice) would take the money and leave the invoice
    open; one of a paid invoice would be refunded, or, declined, would have dunning chase a paid invoice.

    Returns the invoice's subscription: a payment by hand names it as the automatic charge did, so a case dunning
    opens when it fails ends when the subscription is canceled, like the automatic charge's would."""
    assert body.invoice_id is not None
    under_way = await hold_for_payment_by_hand(session, body.invoice_id)
    invoice = await known_invoice(session, body.invoice_id)
    if invoice is None or invoice.customer_id != body.customer_id:  # another customer's: not even that it exists
        raise ApiError(422, "unknown_invoice", "this customer has no invoice with this id to pay (an invoice can "
                       "be paid once it is finalized with an amount due)", field="invoice_id")
    if invoice.currency != body.currency:
        raise ApiError(422, "currency_mismatch", f"the invoice is in {invoice.currency}", field="currency")
    if invoice.voided:
        raise ApiError(409, "invoice_void", "the invoice is void: nothing is owed on it", field="invoice_id")
    if invoice.paid:
        raise ApiError(409, "invoice_paid", "the invoice is already paid", field="invoice_id")
    # More than is owed would be taken from the card and only later refunded (if that refund goes through). A payment
    # whose outcome is unknown is not counted: the customer may pay again meanwhile, and any excess is refunded.
    owed = invoice.owed
    if body.amount > owed - under_way:
        if under_way:
            raise ApiError(409, "payment_in_progress", f"{format_money(under_way, invoice.currency)} of the "
                           f"{format_money(owed, invoice.currency)} this invoice owes is being charged right now; "
                           "see how that ends before paying more", field="invoice_id")
        raise ApiError(422, "amount_exceeds_due", f"the invoice owes {format_money(owed, invoice.currency)} "
                       f"({owed} in minor units)", field="amount")
    return invoice.subscription_id


def _target(body: PaymentCreate, payment_id: uuid.UUID, subscription_id: uuid.UUID | None) -> ChargeTarget:
    # Attempt 1 of a one-off payment is keyed by the payment itself; dunning's retries by the same root.
    return ChargeTarget(
        customer_id=body.customer_id,
        amount=body.amount,
        currency=body.currency,
        source="api",
        attempt=1,
        gateway_key=payment_charge_key(payment_id, 1),
        invoice_id=body.invoice_id,
        subscription_id=subscription_id,
        description=body.description,
    )


async def _resume(ctx: PaymentContext, payment_id: uuid.UUID) -> tuple[Payment, str | None]:
    """(payment, token to charge again under the same key), or no token when it needs no gateway call."""
    async with ctx.db.reads() as session:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            raise not_found("payment")
        if payment.status != "pending" or payment.payment_method_id is None:
            return payment, None
        # A card detached since is not charged now; whether the dead request charged it, the reconciler
        # learns from the gateway by the payment's key.
        method = await attached_method(session, payment.customer_id, payment.payment_method_id)
        return payment, method.gateway_token if method else None


@router.get("/{payment_id}", response_model=PaymentOut, summary="Read a payment (its customer, or admin)")
async def read_payment(payment_id: uuid.UUID, ctx: Context, principal: CurrentPrincipal) -> PaymentOut:
    async with ctx.db.reads() as session:
        payment = await session.get(Payment, payment_id)
    if payment is None or not principal.can_see(payment.customer_id):
        raise not_found("payment")
    return PaymentOut.model_validate(payment)


@router.get("", response_model=PaymentPage, summary="List payments (a user sees only its own)")
async def list_payments(
    ctx: Context,
    principal: CurrentPrincipal,
    customer_id: uuid.UUID | None = None,
    invoice_id: uuid.UUID | None = None,
    status: Status | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> PaymentPage:
    customer_id = principal.customer_to_list(customer_id)
    stmt = select(Payment)
    if customer_id is not None:
        stmt = stmt.where(Payment.customer_id == customer_id)
    if invoice_id is not None:
        stmt = stmt.where(Payment.invoice_id == invoice_id)
    if status is not None:
        stmt = stmt.where(Payment.status == status)
    async with ctx.db.reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, Payment.id, cursor, limit)
    return PaymentPage(
        data=[PaymentOut.model_validate(r) for r in rows], has_more=next_cursor is not None, next_cursor=next_cursor
    )
