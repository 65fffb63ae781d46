"""The customer projection (bill-to names and emails), fed by customer.created / customer.updated."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert

from billing_shared.contracts import CustomerCreated
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..db.models import Customer


async def handle_customer_changed(envelope: Envelope, uow: UnitOfWork) -> None:
    # customer.created and customer.updated carry the same fields; the newer fact wins whatever the order.
    event = envelope.payload_as(CustomerCreated)
    stmt = insert(Customer).values(
        id=event.customer_id, email=event.email, name=event.name, updated_at=envelope.occurred_at
    )
    await uow.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Customer.id],
            set_={"email": stmt.excluded.email, "name": stmt.excluded.name, "updated_at": stmt.excluded.updated_at},
            where=Customer.updated_at <= stmt.excluded.updated_at,
        )
    )
