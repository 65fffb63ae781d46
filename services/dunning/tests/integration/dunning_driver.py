"""A test driver for dunning flows: publish payment events, run the scheduler, read events back."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from billing_shared.contracts import (
    InvoicePaid,
    PaymentFailed,
    PaymentMethodAdded,
    PaymentSucceeded,
    SubscriptionCanceled,
)
from billing_shared.events import Envelope
from billing_shared.testing import EventBus, wait_for


@dataclass
class Debt:
    """The customer, invoice and first payment a test's dunning case is about."""

    customer_id: uuid.UUID = field(default_factory=uuid.uuid4)
    invoice_id: uuid.UUID | None = field(default_factory=uuid.uuid4)
    payment_id: uuid.UUID = field(default_factory=uuid.uuid4)
    subscription_id: uuid.UUID | None = field(default_factory=uuid.uuid4)
    amount: int = 2500
    currency: str = "EUR"

    def facts(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "invoice_id": self.invoice_id,
            "amount": self.amount,
            "currency": self.currency,
            "subscription_id": self.subscription_id,
        }


class Dunning:
    def __init__(self, client, admin_headers: dict[str, str], bus: EventBus):
        self.client = client
        self.admin = admin_headers
        self.bus = bus

    async def fail(
        self,
        debt: Debt,
        at: datetime,
        *,
        attempt: int = 1,
        case_id: uuid.UUID | None = None,
        decline_type: str = "soft",
        event_id: uuid.UUID | None = None,
        payment_id: uuid.UUID | None = None,
        invoice_already_paid: bool = False,
    ) -> Envelope:
        event = PaymentFailed(
            **debt.facts(),
            payment_id=payment_id or (debt.payment_id if attempt == 1 else uuid.uuid4()),
            dunning_case_id=case_id,
            attempt=attempt,
            failure_code="card_declined" if decline_type == "soft" else "stolen_card",
            decline_type=decline_type,  # type: ignore[arg-type]
            invoice_already_paid=invoice_already_paid,
        )
        return await self.bus.publish(event, event_id=event_id, occurred_at=at)

    async def succeed(self, debt: Debt, at: datetime, *, attempt: int = 1, case_id: uuid.UUID | None = None):
        """A successful payment of the debt, announced as the system does. A payment that is not dunning's retry
        (the customer paid by hand) reaches dunning only as its invoice's invoice.paid; a retry's invoice.paid,
        which always follows the retry's own payment.succeeded, is left out."""
        event = PaymentSucceeded(
            **debt.facts(), payment_id=uuid.uuid4(), dunning_case_id=case_id, attempt=attempt
        )
        announced = await self.bus.publish(event, occurred_at=at)
        if case_id is None and debt.invoice_id is not None:
            paid = InvoicePaid(
                invoice_id=debt.invoice_id, customer_id=debt.customer_id, subscription_id=debt.subscription_id,
                currency=debt.currency, total=debt.amount, amount_paid=debt.amount, paid_at=at,
                payment_id=event.payment_id,
            )
            await self.bus.publish(paid, occurred_at=at)
        return announced

    async def add_card(self, debt: Debt, at: datetime) -> uuid.UUID:
        method_id = uuid.uuid4()
        event = PaymentMethodAdded(
            payment_method_id=method_id, customer_id=debt.customer_id, brand="visa", last4="4242",
            exp_month=12, exp_year=2130, is_default=True,
        )
        await self.bus.publish(event, occurred_at=at)
        return method_id

    async def cancel_subscription(
        self, debt: Debt, ends_at: datetime, *, at_period_end: bool = False, event_id: uuid.UUID | None = None
    ) -> Envelope:
        """The debt's subscription canceled, announced as the subscription service does: when the cancellation
        takes effect (a cancel at period end, asked for earlier, at the period's end)."""
        assert debt.subscription_id is not None
        event = SubscriptionCanceled(
            subscription_id=debt.subscription_id, customer_id=debt.customer_id,
            canceled_at=ends_at - timedelta(days=10) if at_period_end else ends_at, at_period_end=at_period_end,
            ends_at=ends_at, currency=debt.currency,
        )
        return await self.bus.publish(event, event_id=event_id, occurred_at=ends_at)

    async def run(self, as_of: datetime) -> dict[str, Any]:
        response = await self.client.post("/api/dunning/runs", json={"as_of": as_of.isoformat()}, headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()

    async def case(self, case_id: uuid.UUID | str) -> dict[str, Any]:
        response = await self.client.get(f"/api/dunning/cases/{case_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()

    async def cases_of(self, debt: Debt) -> list[dict[str, Any]]:
        """The debt's cases (its invoice's, or its one-off payment's), as GET /cases lists them."""
        params = {"customer_id": str(debt.customer_id)}
        response = await self.client.get("/api/dunning/cases", params=params, headers=self.admin)
        assert response.status_code == 200, response.text
        return [
            c for c in response.json()["data"]
            if c["invoice_id"] == (str(debt.invoice_id) if debt.invoice_id else None)
            and (debt.invoice_id is not None or c["payment_id"] == str(debt.payment_id))
        ]

    def events(self, event_type: str, debt: Debt) -> list[Envelope]:
        return [
            e for e in self.bus.of_type(event_type)
            if e.payload["customer_id"] == str(debt.customer_id)
            and e.payload.get("invoice_id") == (str(debt.invoice_id) if debt.invoice_id else None)
        ]

    async def wait_event(
        self, event_type: str, debt: Debt, where: Callable[[Envelope], bool] = lambda e: True, count: int = 1
    ) -> list[Envelope]:
        async def found() -> list[Envelope] | None:
            matching = [e for e in self.events(event_type, debt) if where(e)]
            return matching if len(matching) >= count else None

        return await wait_for(found, message=f"{count} x {event_type}")
