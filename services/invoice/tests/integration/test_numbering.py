"""Invoice numbers are gapless and unique per series, under concurrent finalizations and rollbacks."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

from sqlalchemy import select

from app.db.models import Customer, Invoice
from app.domain.invoices import LineItem
from app.invoicing import Draft, finalize, lock_invoice, open_invoice
from billing_shared.contracts import SubscriptionCreated
from billing_shared.testing import wait_for

from conftest import START


async def drafts(db, count: int) -> list[uuid.UUID]:
    """Draft invoices of one customer the service knows (an invoice is finalized only with its bill-to)."""
    ids, customer_id = [], uuid.uuid4()
    async with db.uow() as uow:
        uow.session.add(Customer(id=customer_id, email=f"n-{customer_id.hex[:8]}@example.com", updated_at=START))
        for _ in range(count):
            draft = Draft(
                kind="period", billing_reason="manual", customer_id=customer_id, currency="USD",
                lines=[LineItem("Pro", 1000, "USD", kind="subscription")],
                subscription_id=uuid.uuid4(), period_start=START, effective_at=START,
            )
            ids.append((await open_invoice(uow.session, draft, START)).id)
        await uow.commit()
    return ids


async def finalize_one(db, terms, invoice_id: uuid.UUID, commit: bool = True) -> None:
    async with db.uow() as uow:
        invoice = await lock_invoice(uow.session, invoice_id)
        await finalize(uow, terms, invoice, START)
        if commit:
            await uow.commit()
        # otherwise the unit of work rolls back as it closes


async def numbers(db, ids: list[uuid.UUID]) -> list[str | None]:
    async with db.sessions() as session:
        return list((await session.scalars(select(Invoice.number).where(Invoice.id.in_(ids)))).all())


def series(prefix: str, count: int) -> list[str]:
    return [f"{prefix}-{n:06d}" for n in range(1, count + 1)]


async def test_50_concurrent_finalizations_on_separate_sessions_number_1_to_50(app, db):
    terms = dataclasses.replace(app.state.terms, invoice_prefix="CONC-")
    ids = await drafts(db, 50)

    await asyncio.gather(*(finalize_one(db, terms, invoice_id) for invoice_id in ids))

    assert sorted(await numbers(db, ids)) == series("CONC", 50)


async def test_a_rolled_back_finalization_leaves_no_gap(app, db):
    terms = dataclasses.replace(app.state.terms, invoice_prefix="RB-")
    first, second = await drafts(db, 2)

    await finalize_one(db, terms, first, commit=False)
    await finalize_one(db, terms, second)
    await finalize_one(db, terms, first)

    assert await numbers(db, [second]) == ["RB-000001"]
    assert await numbers(db, [first]) == ["RB-000002"]


async def test_concurrent_finalizations_with_rollbacks_among_them_stay_gapless(app, db):
    terms = dataclasses.replace(app.state.terms, invoice_prefix="MIX-")
    ids = await drafts(db, 30)

    await asyncio.gather(*(finalize_one(db, terms, i, commit=n % 3 != 0) for n, i in enumerate(ids)))

    assert sorted(n for n in await numbers(db, ids) if n) == series("MIX", 20)


async def test_50_concurrent_subscriptions_get_distinct_gapless_invoice_numbers(billing, db):
    customer_id = await billing.customer()
    events = [billing.period_event(SubscriptionCreated, customer_id=customer_id) for _ in range(50)]
    await asyncio.gather(*(billing.publish(event, at=START) for event in events))
    subscription_ids = [e.subscription_id for e in events]

    async def all_finalized() -> list[str] | None:
        async with db.sessions() as session:
            found = (
                await session.scalars(
                    select(Invoice.number).where(Invoice.subscription_id.in_(subscription_ids), Invoice.number.is_not(None))
                )
            ).all()
        return list(found) if len(found) == 50 else None

    new_numbers = await wait_for(all_finalized, timeout=30, message="50 finalized invoices")
    assert len(set(new_numbers)) == 50
    async with db.sessions() as session:
        every_number = (await session.scalars(select(Invoice.number).where(Invoice.number.like("INV-%")))).all()
    assert sorted(every_number) == series("INV", len(every_number))


async def test_a_prefix_with_or_without_its_dash_continues_one_series(app, db):
    ids = await drafts(db, 3)
    for prefix, invoice_id in zip(("DASH-", "DASH", " DASH- "), ids):
        await finalize_one(db, dataclasses.replace(app.state.terms, invoice_prefix=prefix), invoice_id)

    assert sorted(await numbers(db, ids)) == series("DASH", 3)  # never two invoices numbered DASH-000001
