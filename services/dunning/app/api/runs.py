"""POST /api/dunning/runs: run the scheduler now, or as of a given time (admin; tests move time with it)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from billing_shared import clock
from billing_shared.auth import AdminPrincipal

from ..scheduler import run_due
from .schemas import RunOut, RunRequest

router = APIRouter(prefix="/api/dunning", tags=["dunning"])


@router.post("/runs", response_model=RunOut, summary="Emit every retry due by as_of (admin)")
async def create_run(request: Request, admin: AdminPrincipal, body: RunRequest | None = None) -> RunOut:
    now = clock.now()
    as_of = body.as_of if body and body.as_of else now
    settings = request.app.state.settings
    # A typo's as_of would give up at once on every case waiting for a new card: suspended, uncollectible.
    clock.check_as_of(as_of, now, settings.dunning_max_as_of_ahead_days)
    result = await run_due(request.app.state.runtime.db, as_of, settings.dunning_scheduler_batch_size)
    return RunOut(as_of=as_of, retries_due=result.retries_due, exhausted=result.exhausted)
