"""The plan catalog: admins create and archive plans; anyone signed in reads them. Prices never change."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from billing_shared import clock
from billing_shared.auth import AdminPrincipal, CurrentPrincipal
from billing_shared.db import UnitOfWork
from billing_shared.errors import not_found
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..db.models import Plan
from .deps import IdempotencyKey, database, plan_out, respond_idempotently
from .schemas import PlanCreate, PlanOut, PlanPage

router = APIRouter(prefix="/api/plans", tags=["plans"])


@router.post(
    "",
    status_code=201,
    response_model=PlanOut,
    summary="Create a plan (admin). Its price is immutable: a new price is a new plan",
)
async def create_plan(
    body: PlanCreate, request: Request, admin: AdminPrincipal, idempotency_key: IdempotencyKey = None
) -> PlanOut:
    async def work(uow: UnitOfWork) -> PlanOut:
        plan = Plan(**body.model_dump(), created_at=clock.now())
        uow.session.add(plan)
        await uow.session.flush()
        return plan_out(plan)

    return await respond_idempotently(  # type: ignore[return-value]
        request,
        scope=f"plans:{admin.customer_id}",
        key=idempotency_key,
        fingerprint=body.model_dump(mode="json"),
        status=201,
        work=work,
        required=False,
    )


@router.get("", response_model=PlanPage, summary="List plans (archived ones only with include_archived=true)")
async def list_plans(
    request: Request,
    principal: CurrentPrincipal,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> PlanPage:
    stmt = select(Plan)
    if not include_archived:
        stmt = stmt.where(Plan.archived_at.is_(None))
    async with database(request).reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, Plan.id, cursor, limit)
    return PlanPage(data=[plan_out(p) for p in rows], has_more=next_cursor is not None, next_cursor=next_cursor)


@router.get("/{plan_id}", response_model=PlanOut, summary="Read a plan")
async def read_plan(plan_id: uuid.UUID, request: Request, principal: CurrentPrincipal) -> PlanOut:
    async with database(request).reads() as session:
        plan = await session.get(Plan, plan_id)
    if plan is None:
        raise not_found("plan")
    return plan_out(plan)


@router.post(
    "/{plan_id}/archive",
    response_model=PlanOut,
    summary="Archive a plan (admin): no new subscriptions; existing ones keep renewing. Archiving twice is a no-op",
)
async def archive_plan(plan_id: uuid.UUID, request: Request, admin: AdminPrincipal) -> PlanOut:
    async with database(request).uow() as uow:
        plan = await uow.session.get(Plan, plan_id, with_for_update=True)
        if plan is None:
            raise not_found("plan")
        if plan.archived_at is None:
            plan.archived_at = clock.now()
            await uow.commit()
        return plan_out(plan)
