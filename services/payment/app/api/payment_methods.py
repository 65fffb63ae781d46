"""Payment methods: a card is checked here, tokenized at the gateway, and only the token and display
details are kept. Request bodies are never logged, and errors never echo the card number.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select, text, update

from billing_shared import clock
from billing_shared.auth import CurrentPrincipal
from billing_shared.contracts import PaymentMethodAdded
from billing_shared.errors import ApiError, not_found
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..adapters.gateway import CardRejected, GatewayUnavailable
from ..db.models import PaymentMethod
from ..domain.cards import CardValidationError, fingerprint, validate_card
from .deps import Context, IdempotencyKey, check_customer, idempotency_scope
from .schemas import PaymentMethodCreate, PaymentMethodOut, PaymentMethodPage

router = APIRouter(prefix="/api/customers/{customer_id}/payment_methods", tags=["payment methods"])


async def _lock_customer_methods(session, customer_id: uuid.UUID) -> None:
    # Serialises "is there a default?" decisions per customer (add, set default, detach).
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"payment_methods:{customer_id}"})


def _out(method: PaymentMethod) -> dict:
    return PaymentMethodOut.model_validate(method).model_dump(mode="json")


@router.post("", status_code=201, response_model=PaymentMethodOut, summary="Add a card (itself, or admin)")
async def create_payment_method(
    customer_id: uuid.UUID,
    body: PaymentMethodCreate,
    ctx: Context,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    check_customer(principal, customer_id)
    today = clock.now(customer_id).date()
    try:
        details = validate_card(body.card_number, body.exp_month, body.exp_year, body.cvc, today)
    except CardValidationError as exc:
        raise ApiError(422, "invalid_card", exc.message, field=exc.field) from None
    card_fingerprint = fingerprint(body.card_number, ctx.settings.fingerprint_key)

    claim = None
    if idempotency_key is not None:
        # The request is remembered by the card's keyed fingerprint, never by a hash of the number itself.
        remembered = {"customer_id": str(customer_id), "fingerprint": card_fingerprint,
                      "exp_month": details.exp_month, "exp_year": details.exp_year}
        claim = await ctx.keys.claim(idempotency_scope(principal), idempotency_key, remembered)
        if claim.is_replay:
            return JSONResponse(claim.replay_body, status_code=claim.replay_status)
    try:
        try:
            card = await ctx.gateway.tokenize(body.card_number, details.exp_month, details.exp_year, body.cvc)
        except CardRejected as exc:
            raise ApiError(422, "invalid_card", exc.message, field=exc.param or "card_number") from None
        except GatewayUnavailable:
            raise ApiError(503, "gateway_unavailable", "the payment gateway is unavailable; try again") from None
    except ApiError:
        if claim is not None:
            await ctx.keys.release(claim)
        raise

    now = clock.now(customer_id)
    async with ctx.db.uow() as uow:
        await _lock_customer_methods(uow.session, customer_id)
        has_default = await uow.session.scalar(
            select(PaymentMethod.id).where(
                PaymentMethod.customer_id == customer_id,
                PaymentMethod.is_default.is_(True),
                PaymentMethod.detached_at.is_(None),
            )
        )
        method = PaymentMethod(
            customer_id=customer_id,
            gateway_token=card.token,
            brand=details.brand.value,
            last4=details.last4,
            exp_month=details.exp_month,
            exp_year=details.exp_year,
            fingerprint=card_fingerprint,
            is_default=has_default is None,
            created_at=now,
        )
        uow.session.add(method)
        await uow.session.flush()
        uow.emit(
            PaymentMethodAdded(
                payment_method_id=method.id,
                customer_id=customer_id,
                brand=method.brand,
                last4=method.last4,
                exp_month=method.exp_month,
                exp_year=method.exp_year,
                is_default=method.is_default,
            ),
            occurred_at=now,
        )
        body_out = _out(method)
        if claim is not None:
            await ctx.keys.complete(uow.session, claim, 201, body_out, method.id)
        await uow.commit()
    return JSONResponse(body_out, status_code=201)


@router.get("", response_model=PaymentMethodPage, summary="List attached payment methods (itself, or admin)")
async def list_payment_methods(
    customer_id: uuid.UUID,
    ctx: Context,
    principal: CurrentPrincipal,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> PaymentMethodPage:
    check_customer(principal, customer_id)
    stmt = select(PaymentMethod).where(PaymentMethod.customer_id == customer_id, PaymentMethod.detached_at.is_(None))
    async with ctx.db.reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, PaymentMethod.id, cursor, limit)
    return PaymentMethodPage(
        data=[PaymentMethodOut.model_validate(r) for r in rows], has_more=next_cursor is not None, next_cursor=next_cursor
    )


async def _attached(session, customer_id: uuid.UUID, method_id: uuid.UUID) -> PaymentMethod:
    method = await session.get(PaymentMethod, method_id, with_for_update=True)
    if method is None or method.customer_id != customer_id or method.detached_at is not None:
        raise not_found("payment method")
    return method


@router.post("/{method_id}/default", response_model=PaymentMethodOut, summary="Make a method the default")
async def set_default_payment_method(
    customer_id: uuid.UUID, method_id: uuid.UUID, ctx: Context, principal: CurrentPrincipal
) -> PaymentMethodOut:
    check_customer(principal, customer_id)
    async with ctx.db.uow() as uow:
        await _lock_customer_methods(uow.session, customer_id)
        method = await _attached(uow.session, customer_id, method_id)
        if not method.is_default:
            await uow.session.execute(
                update(PaymentMethod)
                .where(PaymentMethod.customer_id == customer_id, PaymentMethod.is_default.is_(True))
                .values(is_default=False)
            )
            method.is_default = True
            await uow.commit()
        return PaymentMethodOut.model_validate(method)


@router.delete("/{method_id}", response_model=PaymentMethodOut, summary="Detach a method (no longer charged)")
async def detach_payment_method(
    customer_id: uuid.UUID, method_id: uuid.UUID, ctx: Context, principal: CurrentPrincipal
) -> PaymentMethodOut:
    check_customer(principal, customer_id)
    async with ctx.db.uow() as uow:
        await _lock_customer_methods(uow.session, customer_id)
        method = await _attached(uow.session, customer_id, method_id)
        # A detached default leaves the customer without one: charges then fail with no_payment_method
        # until another method is added or made default (no silent switch to some other card).
        method.detached_at = clock.now(customer_id)
        method.is_default = False
        await uow.commit()
        return PaymentMethodOut.model_validate(method)
