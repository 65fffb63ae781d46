"""Dependencies of the payment routers: the shared context and the Idempotency-Key header."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Header, Request

from billing_shared.auth import Principal
from billing_shared.errors import not_found

from ..context import PaymentContext


async def _context(request: Request) -> PaymentContext:
    # async: FastAPI runs a sync dependency in the thread pool, a thread hop on every request.
    return request.app.state.payment


Context = Annotated[PaymentContext, Depends(_context)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Required on POSTs that move money (Stripe semantics)"),
]


def check_customer(principal: Principal, customer_id: uuid.UUID) -> None:
    # A user asking about anyone else learns nothing, not even that the customer exists.
    if not principal.can_see(customer_id):
        raise not_found("customer")


def idempotency_scope(principal: Principal) -> str:
    return str(principal.customer_id)
