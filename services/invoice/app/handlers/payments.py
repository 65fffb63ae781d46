"""Payment and dunning facts: a successful payment pays the invoice; exhausted dunning writes it off."""

from __future__ import annotations

from billing_shared.consumer import Retryable
from billing_shared.contracts import DunningExhausted, PaymentSucceeded
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..invoicing import Terms, UnknownInvoice, mark_uncollectible, record_payment


async def handle_payment_succeeded(envelope: Envelope, uow: UnitOfWork, *, terms: Terms) -> None:
    try:
        await record_payment(uow, terms, envelope.payload_as(PaymentSucceeded), envelope.occurred_at)
    except UnknownInvoice as exc:
        # Money must not be lost silently: retried, then dead-lettered where an operator sees it.
        raise Retryable(str(exc)) from exc


async def handle_dunning_exhausted(envelope: Envelope, uow: UnitOfWork) -> None:
    event = envelope.payload_as(DunningExhausted)
    if event.invoice_id is not None:
        await mark_uncollectible(uow, event.invoice_id, envelope.occurred_at)
