"""Invoice service fixtures: a migrated database of its own, the running app, the broker, and event factories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from billing_shared.contracts import (
    CustomerCreated,
    PaymentSucceeded,
    ProrationLine,
    SubscriptionCreated,
    SubscriptionPlanChanged,
    SubscriptionRenewed,
)
from billing_shared.events import Envelope, Event
from billing_shared.testing import EventBus, TestInfra, running, wait_for

pytest_plugins = ["billing_shared.testing"]

START = datetime(2027, 1, 1, tzinfo=UTC)


def plan_change(
    created: SubscriptionCreated, at: datetime, new_plan: str, credit: int, charge: int, **fields: Any
) -> SubscriptionPlanChanged:
    """An immediate change of `created`'s subscription from Pro at `at`: its credit (negative) and charge lines."""
    return SubscriptionPlanChanged(
        subscription_id=created.subscription_id, customer_id=created.customer_id, old_plan_id=created.plan_id,
        new_plan_id=uuid.uuid4(), new_plan_name=new_plan, effective="now", effective_at=at,
        period_start=created.period_start, period_end=created.period_end, currency="USD",
        lines=[
            ProrationLine(description="Unused time on Pro", amount=credit, currency="USD"),
            ProrationLine(description=f"Remaining time on {new_plan}", amount=charge, currency="USD"),
        ],
        **fields,
    )


@pytest.fixture(scope="session")
def service_name() -> str:
    return "invoice"


@pytest.fixture(scope="session")
def app(service_env: TestInfra):
    from app.main import create_app
    from app.settings import Settings

    # A small pool still has concurrent finalizers contend for the counter; the database is shared.
    return create_app(Settings(db_pool_size=4, db_max_overflow=4))


@pytest.fixture(scope="session")
async def client(app):
    async with running(app) as http:
        yield http


@pytest.fixture(scope="session")
async def bus(service_env: TestInfra):
    async with EventBus(service_env.amqp_url) as events:
        await events.record("invoice.*", "credit_note.*")
        yield events


@pytest.fixture(scope="session")
def admin_headers(service_env: TestInfra) -> dict[str, str]:
    return service_env.auth(uuid.uuid4(), "admin")


@pytest.fixture(scope="session")
def db(app):
    return app.state.runtime.db


class Billing:
    """Drives the service through the broker, as the other services would, and reads it back."""

    def __init__(self, client, bus: EventBus, infra: TestInfra, admin_headers: dict[str, str], db):
        self.client, self.bus, self.infra, self.admin, self.db = client, bus, infra, admin_headers, db

    async def publish(self, event: Event, *, at: datetime | None = None, **envelope: Any) -> Envelope:
        if at is not None:
            envelope["occurred_at"] = at
        return await self.bus.publish(event, **envelope)

    async def customer(
        self, name: str = "Ada Lovelace", email: str | None = None, customer_id: uuid.UUID | None = None
    ) -> uuid.UUID:
        customer_id = customer_id or uuid.uuid4()
        email = email or f"ada-{customer_id.hex[:8]}@example.com"
        await self.publish(CustomerCreated(customer_id=customer_id, email=email, name=name), at=START - timedelta(days=1))
        await wait_for(lambda: self.scalar("SELECT 1 FROM customers WHERE id = :id", id=customer_id), message="projection")
        return customer_id

    def period_event(self, kind: type[Event] = SubscriptionCreated, **fields: Any) -> Event:
        values: dict[str, Any] = {
            "subscription_id": uuid.uuid4(),
            "customer_id": uuid.uuid4(),
            "plan_id": uuid.uuid4(),
            "plan_name": "Pro",
            "amount": 4999,
            "currency": "USD",
            "interval": "month",
            "period_start": START,
            "period_end": START + timedelta(days=31),
            "status": "active",
            "payment_method_id": uuid.uuid4(),
        }
        return kind(**(values | fields))

    async def known(self, customer_id: uuid.UUID) -> None:
        """Make sure the service knows this customer (an invoice is not issued before its customer.created)."""
        if not await self.scalar("SELECT 1 FROM customers WHERE id = :id", id=customer_id):
            await self.customer(customer_id=customer_id)

    async def subscribe(self, at: datetime = START, **fields: Any) -> tuple[Event, dict[str, Any]]:
        """Publish subscription.created (for a customer the service knows) and return it with the finalized
        invoice (as the API shows it)."""
        event = self.period_event(SubscriptionCreated, **fields)
        await self.known(event.customer_id)
        await self.publish(event, at=at)
        [invoice] = await self.invoices_of(event.subscription_id)
        return event, invoice

    def renewal(self, created: Event, periods: int = 1) -> Event:
        """The subscription.renewed that starts the `periods`-th period after the created one."""
        length = created.period_end - created.period_start
        start = created.period_start + periods * length
        fields = created.model_dump() | {"period_start": start, "period_end": start + length, "period_index": periods}
        return SubscriptionRenewed(**fields)

    async def invoices_of(self, subscription_id: uuid.UUID, count: int = 1) -> list[dict[str, Any]]:
        async def listed() -> list[dict[str, Any]] | None:
            response = await self.client.get(
                "/api/invoices", params={"subscription_id": str(subscription_id)}, headers=self.admin
            )
            assert response.status_code == 200, response.text
            found = [i for i in response.json()["data"] if i["status"] != "draft"]
            return found if len(found) >= count else None

        return await wait_for(listed, message=f"{count} invoice(s) of subscription {subscription_id}")

    async def invoice(self, invoice_id: Any) -> dict[str, Any]:
        response = await self.client.get(f"/api/invoices/{invoice_id}", headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()

    async def invoice_when(self, invoice_id: Any, predicate) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            invoice = await self.invoice(invoice_id)
            return invoice if predicate(invoice) else None

        return await wait_for(probe, message=f"invoice {invoice_id} to change")

    async def pay(self, invoice: dict[str, Any], amount: int | None = None, at: datetime | None = None, **fields: Any):
        event = PaymentSucceeded(
            payment_id=fields.pop("payment_id", uuid.uuid4()),
            customer_id=invoice["customer_id"],
            amount=invoice["amount_due"] if amount is None else amount,
            currency=invoice["currency"],
            invoice_id=invoice["id"],
            **fields,
        )
        await self.publish(event, at=at or START + timedelta(hours=1))
        return event

    async def handled(self, envelope: Envelope) -> None:
        """Wait until the service has consumed this event (its id is in the inbox)."""
        await wait_for(
            lambda: self.scalar("SELECT 1 FROM inbox WHERE event_id = :id", id=envelope.event_id),
            message=f"{envelope.type} {envelope.event_id} handled",
        )

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.db.sessions() as session:
            return await session.scalar(text(sql), params)

    def events_for(self, event_type: str, invoice_id: Any) -> list[Envelope]:
        return [e for e in self.bus.of_type(event_type) if e.payload.get("invoice_id") == str(invoice_id)]

    async def event_for(self, event_type: str, invoice_id: Any) -> Envelope:
        found = await wait_for(
            lambda: _async_value(self.events_for(event_type, invoice_id)), message=f"{event_type} of {invoice_id}"
        )
        return found[0]


async def _async_value(value: Any) -> Any:
    return value


@pytest.fixture(scope="session")
def billing(client, bus, service_env, admin_headers, db) -> Billing:
    return Billing(client, bus, service_env, admin_headers, db)
