"""Dunning cases: list, read with the timeline of attempts, cancel (admin) and stats (admin)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request

from billing_shared import clock
from billing_shared.auth import AdminPrincipal, CurrentPrincipal
from billing_shared.db import Database
from billing_shared.errors import not_found
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from .. import operations
from ..db import repository
from ..db.models import DunningCase
from ..domain.cases import CaseStatus, recovery_rate, total_attempts
from .schemas import AttemptOut, CaseDetail, CaseOut, CasePage, StatsOut

router = APIRouter(prefix="/api/dunning", tags=["dunning"])


def _db(request: Request) -> Database:
    return request.app.state.runtime.db


def _case_out(request: Request, case: DunningCase) -> CaseOut:
    allowed = total_attempts(request.app.state.settings.retry_schedule)
    return CaseOut.model_validate({**_columns(case), "attempts_allowed": allowed})


def _columns(case: DunningCase) -> dict:
    return {name: getattr(case, name) for name in CaseOut.model_fields if name != "attempts_allowed"}


@router.get("/cases", response_model=CasePage, summary="List dunning cases (a user sees only its own)")
async def list_cases(
    request: Request,
    principal: CurrentPrincipal,
    customer_id: uuid.UUID | None = None,
    status: CaseStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> CasePage:
    customer_id = principal.customer_to_list(customer_id)
    async with _db(request).reads() as session:
        rows, next_cursor = await fetch_page(
            session, repository.cases_query(customer_id, status), DunningCase.id, cursor, limit
        )
    return CasePage(data=[_case_out(request, r) for r in rows], has_more=next_cursor is not None, next_cursor=next_cursor)


@router.get("/cases/{case_id}", response_model=CaseDetail, summary="Read a dunning case with its attempts")
async def read_case(case_id: uuid.UUID, request: Request, principal: CurrentPrincipal) -> CaseDetail:
    async with _db(request).reads() as session:
        case = await session.get(DunningCase, case_id)
        if case is None or not principal.can_see(case.customer_id):
            raise not_found("dunning case")
        attempts = await repository.timeline(session, case_id)
    return CaseDetail(
        **_case_out(request, case).model_dump(), attempts=[AttemptOut.model_validate(a) for a in attempts]
    )


@router.post("/cases/{case_id}/cancel", response_model=CaseOut, summary="Stop dunning a case (admin)")
async def cancel_case(case_id: uuid.UUID, request: Request, admin: AdminPrincipal) -> CaseOut:
    async with _db(request).uow() as uow:
        case = await repository.lock_case(uow.session, case_id)
        if case is None:
            raise not_found("dunning case")
        if operations.cancel(case, clock.now(case.customer_id)):
            await uow.commit()
        return _case_out(request, case)


@router.get("/stats", response_model=StatsOut, summary="Counts of cases by status and the recovery rate (admin)")
async def read_stats(request: Request, admin: AdminPrincipal) -> StatsOut:
    async with _db(request).reads() as session:
        counts = await repository.count_by_status(session)
    return StatsOut(
        open=counts["open"],
        recovered=counts["recovered"],
        exhausted=counts["exhausted"],
        canceled=counts["canceled"],
        recovery_rate=recovery_rate(counts["recovered"], counts["exhausted"]),
    )
