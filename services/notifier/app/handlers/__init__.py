"""Handlers of consumed events: the customer projection, and one email per customer-facing event."""

from __future__ import annotations

from functools import partial

from billing_shared.consumer import Handler, batchable

from ..delivery import EmailDelivery
from ..domain.emails import EMAILED_EVENTS
from .customers import handle_customer_created, handle_customer_updated
from .emails import handle_emailed_event


def build_handlers(delivery: EmailDelivery) -> dict[str, Handler]:
    handlers: dict[str, Handler] = {
        event_type: partial(handle_emailed_event, delivery=delivery) for event_type in EMAILED_EVENTS
    }
    handlers["customer.created"] = partial(handle_customer_created, delivery=delivery)
    handlers["customer.updated"] = batchable(handle_customer_updated)  # the projection only: no email
    return handlers
