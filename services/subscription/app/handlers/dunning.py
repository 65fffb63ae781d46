"""Dunning outcomes: a scheduled retry makes a subscription past_due; an exhausted case suspends it."""

from __future__ import annotations

from billing_shared.contracts import DunningExhausted, DunningRetryScheduled
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..service.collection import mark_past_due, suspend


async def handle_dunning_retry_scheduled(envelope: Envelope, uow: UnitOfWork) -> None:
    scheduled = envelope.payload_as(DunningRetryScheduled)
    if scheduled.subscription_id is not None:
        await mark_past_due(uow, scheduled.subscription_id, envelope.occurred_at, scheduled.invoice_id)


async def handle_dunning_exhausted(envelope: Envelope, uow: UnitOfWork) -> None:
    exhausted = envelope.payload_as(DunningExhausted)
    if exhausted.subscription_id is not None:
        await suspend(
            uow, exhausted.subscription_id, envelope.occurred_at, exhausted.invoice_id,
            owed=(exhausted.amount, exhausted.currency),
        )
