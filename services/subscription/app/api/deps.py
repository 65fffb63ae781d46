"""What every router needs: the database, access checks, row-to-response mapping, idempotent POSTs."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from billing_shared.auth import Principal
from billing_shared.db import Database, UnitOfWork
from billing_shared.errors import ApiError, not_found
from billing_shared.idempotency import Claim, IdempotencyKeys

from ..db.models import Plan, Subscription
from .schemas import PlanOut, SubscriptionOut

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="same key + same body replays the first response (Stripe semantics)"),
]


def database(request: Request) -> Database:
    return request.app.state.runtime.db


def plan_out(plan: Plan) -> PlanOut:
    out = PlanOut.model_validate(plan)
    out.archived = plan.archived_at is not None
    return out


def subscription_fields(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "customer_id": sub.customer_id,
        "plan_id": sub.plan_id,
        "plan": plan_out(sub.plan),
        "pending_plan_id": sub.pending_plan_id,
        "payment_method_id": sub.payment_method_id,
        "status": sub.status,
        "current_period_index": sub.current_period_index,
        "current_period_start": sub.current_period_start,
        "current_period_end": sub.current_period_end,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": sub.canceled_at,
        "ended_at": sub.ended_at,
        "trial_end": sub.trial_end,
        "paused": sub.status == "paused",
        "paused_at": sub.paused_at,
        "resumes_at": sub.resumes_at,
        "service_ends_at": sub.service_ends_at,
        "period_invoice_id": sub.period_invoice_id,
        "created_at": sub.created_at,
        "updated_at": sub.updated_at,
    }


def subscription_out(sub: Subscription) -> SubscriptionOut:
    return SubscriptionOut(**subscription_fields(sub))


def check_owner(principal: Principal, sub: Subscription | None) -> Subscription:
    # A user asking about anyone else's subscription learns nothing, not even that it exists.
    if sub is None or not principal.can_see(sub.customer_id):
        raise not_found("subscription")
    return sub


async def respond_idempotently(
    request: Request,
    *,
    scope: str,
    key: str | None,
    fingerprint: Any,
    status: int,
    work: Callable[[UnitOfWork], Awaitable[BaseModel]],
    required: bool,
) -> JSONResponse:
    """Run `work` in one unit of work; with an Idempotency-Key, store its response in that same transaction.

    A first request claims its key in that transaction too, so a request that fails leaves no claim behind
    (and a concurrent one with the same key waits on the key's unique index, then replays). A key used
    before: the stored response is replayed (same body), refused (another body), or waited for.
    """
    keys: IdempotencyKeys = request.app.state.idempotency
    db = database(request)

    async def run(uow: UnitOfWork, claim: Claim | None) -> JSONResponse:
        body = (await work(uow)).model_dump(mode="json")
        if claim is not None:
            await keys.complete(uow.session, claim, status, body, resource_id=_resource_id(body))
        await uow.commit()
        return JSONResponse(body, status_code=status)

    if key is None and not required:
        async with db.uow() as uow:
            return await run(uow, None)
    async with db.uow() as uow:
        claim = await keys.try_claim(uow.session, scope, key, fingerprint, resource_id=None)
        if claim is not None:
            return await run(uow, claim)
    claim = await keys.claim(scope, key, fingerprint)
    if claim.is_replay:
        return JSONResponse(claim.replay_body, status_code=claim.replay_status or status, headers={"Idempotent-Replayed": "true"})
    try:  # the request that claimed the key died: this one does the work
        async with db.uow() as uow:
            return await run(uow, claim)
    except BaseException:
        await keys.release(claim)
        raise


def _resource_id(body: dict[str, Any]) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(body.get("id")))
    except ValueError:
        return None


def forbid_unless_admin(principal: Principal, value: Any, field: str) -> None:
    if value is not None and not principal.is_admin:
        raise ApiError(403, "forbidden", f"only an admin may set {field}", field=field)
