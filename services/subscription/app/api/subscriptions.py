"""Subscribe, read and list subscriptions, and the admin dashboard's figures."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from billing_shared import clock
from billing_shared.auth import AdminPrincipal, CurrentPrincipal, Principal
from billing_shared.db import UnitOfWork
from billing_shared.errors import ApiError
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..db.models import Plan, Subscription
from ..db import repository
from ..db.repository import find_or_create_plan, get_plan
from ..domain.pricing import RecurringAmount, major_to_minor, monthly_recurring_revenue
from ..domain.states import SubscriptionStatus
from ..service.subscribing import require_live_plan, subscribe
from .deps import IdempotencyKey, check_owner, database, respond_idempotently, subscription_out
from .schemas import MrrAmount, StatsOut, Status, SubscriptionCreate, SubscriptionOut, SubscriptionPage

router = APIRouter(prefix="/api/subscriptions", tags=["subscriptions"])

DEMO_INTERVALS = {"monthly": "month", "yearly": "year"}

CREATE_DESCRIPTION = """
Subscribe a customer to a plan. Requires an `Idempotency-Key` header (same key + same body replays the
first response; same key + another body is a 422).

Two body shapes:

* `{customer_id, plan_id, payment_method_id?, trial_days?}`: the plan from `POST /api/plans`.
* The original demo's convenience body `{customer_id, plan_name, price, billing_interval, currency?}`:
  finds the live plan with exactly that name, price and interval (`monthly` or `yearly`, every 1), and
  creates it if missing when the caller is an admin (a user can only pick an existing plan: nobody sets
  their own price). `price` is in MAJOR units (`"49.99"` or `49.99`) and is converted exactly to minor
  units with decimal arithmetic; a price with more decimal places than the currency has is refused, not
  rounded. `currency` defaults to USD.

A user may only subscribe itself (403 otherwise); an admin may subscribe anyone.
"""


def _check_body_shape(body: SubscriptionCreate) -> None:
    demo_fields = {"plan_name": body.plan_name, "price": body.price, "billing_interval": body.billing_interval}
    if body.plan_id is not None:
        given = [name for name, value in {**demo_fields, "currency": body.currency}.items() if value is not None]
        if given:
            raise ApiError(422, "validation_error", f"give either plan_id or {given[0]}, not both", field=given[0])
        return
    for name, value in demo_fields.items():
        if value is None:
            raise ApiError(422, "validation_error", f"{name} is required when plan_id is not given", field=name)


async def _resolve_plan(uow: UnitOfWork, body: SubscriptionCreate, principal: Principal) -> Plan:
    if body.plan_id is not None:
        return require_live_plan(await get_plan(uow.session, body.plan_id))
    currency = body.currency or "USD"
    try:
        amount = major_to_minor(body.price, currency)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ApiError(422, "validation_error", str(exc), field="price") from None
    plan = await find_or_create_plan(
        uow.session,
        name=body.plan_name or "",
        amount=amount,
        currency=currency,
        interval=DEMO_INTERVALS[body.billing_interval or "monthly"],
        create=principal.is_admin,
    )
    if plan is None:
        raise ApiError(
            422, "unknown_plan", "no live plan has this name, price and interval; an admin must create it", field="plan_name"
        )
    return plan


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionOut,
    summary="Subscribe a customer to a plan (Idempotency-Key required)",
    description=CREATE_DESCRIPTION,
)
async def create_subscription(
    body: SubscriptionCreate, request: Request, principal: CurrentPrincipal, idempotency_key: IdempotencyKey = None
) -> SubscriptionOut:
    if not principal.can_see(body.customer_id):
        raise ApiError(403, "forbidden", "a user can only subscribe itself", field="customer_id")
    _check_body_shape(body)

    async def work(uow: UnitOfWork) -> SubscriptionOut:
        plan = await _resolve_plan(uow, body, principal)
        if body.trial_days is not None and body.trial_days > plan.trial_days and not principal.is_admin:
            # A user may shorten or skip the plan's trial; a longer one is free service, an admin's call.
            raise ApiError(
                403, "forbidden", f"only an admin may set a trial longer than the plan's {plan.trial_days} days",
                field="trial_days",
            )
        sub = await subscribe(
            uow,
            customer_id=body.customer_id,
            plan=plan,
            payment_method_id=body.payment_method_id,
            trial_days=body.trial_days,
            now=clock.now(body.customer_id),
        )
        return subscription_out(sub)

    return await respond_idempotently(  # type: ignore[return-value]
        request,
        scope=f"subscriptions:{principal.customer_id}",
        key=idempotency_key,
        fingerprint=body.model_dump(mode="json"),
        status=201,
        work=work,
        required=True,
    )


@router.get("", response_model=SubscriptionPage, summary="List subscriptions (a user sees only its own)")
async def list_subscriptions(
    request: Request,
    principal: CurrentPrincipal,
    customer_id: uuid.UUID | None = None,
    status: Status | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> SubscriptionPage:
    customer_id = principal.customer_to_list(customer_id)
    stmt = select(Subscription).options(selectinload(Subscription.plan))
    if customer_id is not None:
        stmt = stmt.where(Subscription.customer_id == customer_id)
    if status is not None:
        stmt = stmt.where(Subscription.status == status)
    async with database(request).reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, Subscription.id, cursor, limit)
    return SubscriptionPage(
        data=[subscription_out(s) for s in rows], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@router.get(
    "/stats",
    response_model=StatsOut,
    summary="MRR per currency and subscription counts per status (admin)",
    description="MRR counts active and past_due subscriptions, each price divided by its months per period "
    "(a yearly price by 12 x interval_count), summed exactly and rounded half-up once per currency.",
)
async def read_subscription_stats(request: Request, admin: AdminPrincipal) -> StatsOut:
    async with database(request).reads() as session:
        groups = (
            await session.execute(
                select(Plan.currency, Plan.interval, Plan.interval_count, func.sum(Plan.amount))
                .join(Subscription, Subscription.plan_id == Plan.id)
                .where(Subscription.status.in_(("active", "past_due")))
                .group_by(Plan.currency, Plan.interval, Plan.interval_count)
            )
        ).all()
        counted = (await session.execute(select(Subscription.status, func.count()).group_by(Subscription.status))).all()
    mrr = monthly_recurring_revenue(RecurringAmount(c, i, n, int(total)) for c, i, n, total in groups)
    counts = {status.value: 0 for status in SubscriptionStatus}
    counts.update({status: count for status, count in counted})
    return StatsOut(mrr=[MrrAmount(currency=c, amount=a) for c, a in mrr.items()], counts=counts)


@router.get("/{subscription_id}", response_model=SubscriptionOut, summary="Read a subscription (owner or admin)")
async def read_subscription(
    subscription_id: uuid.UUID, request: Request, principal: CurrentPrincipal
) -> SubscriptionOut:
    async with database(request).reads() as session:
        sub = check_owner(principal, await repository.read_subscription(session, subscription_id))
    return subscription_out(sub)
