"""The customer projection (bill-to names and emails), fed by customer.created / customer.updated."""

from __future__ import annotations

from billing_shared.contracts import CustomerCreated
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope
from billing_shared.projections import newest_wins_upsert

from ..db.models import Customer

_UPSERT_CUSTOMER = newest_wins_upsert(Customer.__table__, key="id", version="updated_at", columns=("email", "name"))


async def handle_customer_changed(envelope: Envelope, uow: UnitOfWork) -> None:
    # customer.created and customer.updated carry the same fields; the newer fact wins whatever the order.
    event = envelope.payload_as(CustomerCreated)
    await uow.session.execute(
        _UPSERT_CUSTOMER,
        {"id": event.customer_id, "email": event.email, "name": event.name, "updated_at": envelope.occurred_at},
    )
