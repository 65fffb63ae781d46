"""What each consumed event does, keyed by routing key."""

from __future__ import annotations

from functools import partial

from billing_shared.consumer import Handler, batchable

from ..invoicing import Terms
from .customers import handle_customer_changed
from .payments import handle_dunning_exhausted, handle_payment_succeeded
from .subscriptions import (
    handle_subscription_canceled,
    handle_subscription_created,
    handle_subscription_plan_changed,
    handle_subscription_renewed,
)


# Payments of no invoice (one-off charges) are not ours to hear.
BINDINGS = {"payment.succeeded": ["payment.succeeded.invoice.*"]}


def make_handlers(terms: Terms) -> dict[str, Handler]:
    # Every effect of these is in the unit of work: under load the consumer applies several in one transaction.
    handlers: dict[str, Handler] = {
        "customer.created": handle_customer_changed,
        "customer.updated": handle_customer_changed,
        "subscription.created": partial(handle_subscription_created, terms=terms),
        "subscription.renewed": partial(handle_subscription_renewed, terms=terms),
        "subscription.plan_changed": partial(handle_subscription_plan_changed, terms=terms),
        "subscription.canceled": partial(handle_subscription_canceled, terms=terms),
        "payment.succeeded": partial(handle_payment_succeeded, terms=terms),
        "dunning.exhausted": handle_dunning_exhausted,
    }
    return {event_type: batchable(handler) for event_type, handler in handlers.items()}
