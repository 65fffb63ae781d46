"""Cancel, change plan, pause and resume a subscription (owner or admin)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request

from billing_shared import clock
from billing_shared.auth import CurrentPrincipal, Principal
from billing_shared.db import UnitOfWork

from ..db.models import Subscription
from ..db.repository import get_plan, lock_subscription
from ..service import lifecycle
from ..service.subscribing import require_live_plan
from .deps import (
    IdempotencyKey,
    check_owner,
    database,
    forbid_unless_admin,
    respond_idempotently,
    subscription_fields,
    subscription_out,
)
from .schemas import ProrationLineOut
from .schemas import CancelRequest, ChangePlanRequest, PauseRequest, SubscriptionChangeOut, SubscriptionOut

router = APIRouter(prefix="/api/subscriptions", tags=["subscriptions"])

CANCEL_DESCRIPTION = """
The body is optional (no body = cancel now).

* `at_period_end: false` (default): canceled now. If the current period was paid, the unused part is
  credited: price x unused whole UTC days / days in the period, rounded half-up, never more than was
  paid (the Kill Bill convention); an unpaid period credits 0. Emits subscription.canceled with the credit
  and its line ("Unused time: 29 of 30 days of Pro"). A payment for that period consumed after the cancel
  (events are asynchronous) earns the rest of that credit then: a second subscription.canceled with
  `correction: true` carries the extra credit, prorated at the same instant.
* `at_period_end: true`: stays active until the period ends; the billing run then ends it instead of
  renewing (subscription.canceled with credit 0 at that time).

Canceling a canceled subscription is a 409. An `Idempotency-Key` header is optional.
"""

CHANGE_DESCRIPTION = """
Move to another plan with the same currency and billing interval (422 otherwise). An upgrade (higher price)
applies now: the unused part of the paid old price is credited and the rest of the period charged at the
new price, each line rounded half-up separately. A downgrade applies at the end of the period
(`pending_plan_id`), unless `effective: "now"`. Emits subscription.plan_changed with the lines. The
unused part of an old price not yet paid is credited when its payment comes in (subscription.plan_changed
with `correction: true`).
"""


def change_out(sub: Subscription, proration: lifecycle.Proration) -> SubscriptionChangeOut:
    lines = [ProrationLineOut(**line.model_dump()) for line in proration.lines]
    return SubscriptionChangeOut(**subscription_fields(sub), credit_amount=proration.credit_amount, lines=lines)


async def _locked(uow: UnitOfWork, subscription_id: uuid.UUID, principal: Principal) -> Subscription:
    return check_owner(principal, await lock_subscription(uow.session, subscription_id))


@router.post(
    "/{subscription_id}/cancel",
    response_model=SubscriptionChangeOut,
    summary="Cancel now (prorated credit of a paid period) or at period end",
    description=CANCEL_DESCRIPTION,
)
async def cancel_subscription(
    subscription_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    body: CancelRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> SubscriptionChangeOut:
    body = body or CancelRequest()
    forbid_unless_admin(principal, body.proration_date, "proration_date")

    async def work(uow: UnitOfWork) -> SubscriptionChangeOut:
        sub = await _locked(uow, subscription_id, principal)
        now = clock.now(sub.customer_id)
        at = now if body.at_period_end else lifecycle.proration_instant(
            sub, body.proration_date, now, before_period=True
        )
        proration = await lifecycle.cancel(uow, sub, at_period_end=body.at_period_end, at=at, now=now)
        return change_out(sub, proration)

    return await respond_idempotently(  # type: ignore[return-value]
        request,
        scope=f"cancel:{principal.customer_id}:{subscription_id}",  # the caller's: a replay skips the owner check
        key=idempotency_key,
        fingerprint=body.model_dump(mode="json"),
        status=200,
        work=work,
        required=False,
    )


@router.post(
    "/{subscription_id}/change",
    response_model=SubscriptionChangeOut,
    summary="Change plan: upgrades now with proration, downgrades at period end",
    description=CHANGE_DESCRIPTION,
)
async def change_subscription_plan(
    subscription_id: uuid.UUID,
    body: ChangePlanRequest,
    request: Request,
    principal: CurrentPrincipal,
    idempotency_key: IdempotencyKey = None,
) -> SubscriptionChangeOut:
    forbid_unless_admin(principal, body.proration_date, "proration_date")

    async def work(uow: UnitOfWork) -> SubscriptionChangeOut:
        sub = await _locked(uow, subscription_id, principal)
        new_plan = require_live_plan(await get_plan(uow.session, body.plan_id))
        now = clock.now(sub.customer_id)
        at = lifecycle.proration_instant(sub, body.proration_date, now)
        proration = await lifecycle.change_plan(uow, sub, new_plan, effective=body.effective, at=at, now=now)
        return change_out(sub, proration)

    return await respond_idempotently(  # type: ignore[return-value]
        request,
        scope=f"change:{principal.customer_id}:{subscription_id}",
        key=idempotency_key,
        fingerprint=body.model_dump(mode="json"),
        status=200,
        work=work,
        required=False,
    )


@router.post(
    "/{subscription_id}/pause",
    response_model=SubscriptionOut,
    summary="Pause: nothing is billed until it resumes (at resumes_at, or by POST .../resume)",
)
async def pause_subscription(
    subscription_id: uuid.UUID, request: Request, principal: CurrentPrincipal, body: PauseRequest | None = None
) -> SubscriptionOut:
    body = body or PauseRequest()
    async with database(request).uow() as uow:
        sub = await _locked(uow, subscription_id, principal)
        lifecycle.pause(uow, sub, resumes_at=body.resumes_at, now=clock.now(sub.customer_id))
        out = subscription_out(sub)
        await uow.commit()
    return out


@router.post(
    "/{subscription_id}/resume",
    response_model=SubscriptionOut,
    summary="Resume a paused subscription",
    description="Resumed inside the period it was paused in, that period (already billed) continues. "
    "Resumed after that period ended, a fresh period starts at the resume instant and is billed as a "
    "renewal (subscription.renewed), so the paused time is never billed. With an Idempotency-Key, a retry "
    "replays the first answer (a resume may start a billed period).",
)
async def resume_subscription(
    subscription_id: uuid.UUID, request: Request, principal: CurrentPrincipal, idempotency_key: IdempotencyKey = None
) -> SubscriptionOut:
    async def work(uow: UnitOfWork) -> SubscriptionOut:
        sub = await _locked(uow, subscription_id, principal)
        await lifecycle.resume(uow, sub, at=clock.now(sub.customer_id))
        return subscription_out(sub)

    return await respond_idempotently(  # type: ignore[return-value]
        request,
        scope=f"resume:{principal.customer_id}:{subscription_id}",  # the caller's: a replay skips the owner check
        key=idempotency_key,
        fingerprint={},
        status=200,
        work=work,
        required=False,
    )
