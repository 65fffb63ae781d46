"""A canceled subscription's unpaid invoices are no longer collected automatically (Stripe does the same): its
open cases are canceled, so a customer who canceled is neither charged again nor told of a suspension that
cannot happen. The invoices stay open; paying one still closes nothing but the invoice. Dunning remembers the
cancellation: a failure that reaches it later (events of two services come in any order) opens its case canceled.
A cancel at period end is announced when it takes effect, at the period's end, like an immediate one."""

from __future__ import annotations

from billing_shared.clock import ensure_utc
from billing_shared.contracts import SubscriptionCanceled
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from .. import operations
from ..db import repository


async def handle_subscription_canceled(envelope: Envelope, uow: UnitOfWork) -> None:
    canceled = envelope.payload_as(SubscriptionCanceled)
    if canceled.correction:
        return  # a later credit for an earlier cancellation: its cases were closed then
    at = ensure_utc(envelope.occurred_at)
    await repository.remember_canceled_subscription(uow.session, canceled.subscription_id, at)
    for case in await repository.lock_open_cases_of_subscription(uow.session, canceled.subscription_id):
        operations.cancel(case, at)
