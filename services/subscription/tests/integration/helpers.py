"""Small request helpers shared by the integration tests."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text

from billing_shared.testing import events_handled


def idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def dunning_event(cls, sub: dict, **extra: Any):
    """A dunning event of class `cls` about the subscription's 30.00 USD."""
    return cls(
        case_id=uuid.uuid4(),
        customer_id=uuid.UUID(sub["customer_id"]),
        subscription_id=uuid.UUID(sub["id"]),
        amount=3000,
        currency="USD",
        **extra,
    )


async def create_plan(client, admin_headers, **overrides: Any) -> dict[str, Any]:
    body = {"name": f"Plan {uuid.uuid4().hex[:6]}", "amount": 3000, "currency": "USD", "interval": "month"}
    response = await client.post("/api/plans", json={**body, **overrides}, headers=admin_headers)
    assert response.status_code == 201, response.text
    return response.json()


async def subscribe(client, headers, customer_id, plan_id, **extra: Any) -> dict[str, Any]:
    body = {"customer_id": str(customer_id), "plan_id": plan_id, **extra}
    response = await client.post("/api/subscriptions", json=body, headers={**headers, **idem()})
    assert response.status_code == 201, response.text
    return response.json()


async def bill(client, admin_headers, as_of: str) -> dict[str, Any]:
    response = await client.post("/api/billing-runs", json={"as_of": as_of}, headers=admin_headers)
    assert response.status_code == 200, response.text
    return response.json()


async def events_for(bus, event_type: str, subscription_id: str, count: int = 1, timeout: float = 10.0) -> list:
    """Wait until `count` events of this type about this subscription were recorded; return them all."""
    from billing_shared.testing import wait_for

    async def enough():
        found = [e for e in bus.of_type(event_type) if e.payload.get("subscription_id") == subscription_id]
        return found if len(found) >= count else None

    return await wait_for(enough, timeout, message=f"{count} x {event_type} for {subscription_id}")


def handled_so_far(event_type: str, outcome: str = "handled") -> float:
    """How many deliveries of this type this process's consumer has ended with this outcome."""
    return events_handled("subscription", event_type, outcome)


async def handled_since(seen: float, event_type: str, outcome: str = "handled") -> bool:
    return handled_so_far(event_type, outcome) > seen


async def period_rows(db, subscription_id: str) -> list:
    async with db.sessions() as session:
        result = await session.execute(
            text(
                "SELECT period_index, period_start, period_end, amount, amount_paid, amount_credited "
                "FROM subscription_periods WHERE subscription_id = :id ORDER BY period_index"
            ),
            {"id": subscription_id},
        )
        return list(result.all())


async def cancel_plan_subscriptions(db, plan_id) -> None:
    """Keep a test's seeded subscriptions out of later tests' billing runs."""
    async with db.uow() as uow:
        await uow.session.execute(text("UPDATE subscriptions SET status = 'canceled' WHERE plan_id = :p"), {"p": plan_id})
        await uow.commit()
