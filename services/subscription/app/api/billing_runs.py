"""Run billing now or as of any instant (admin): renew everything due, one period at a time."""

from __future__ import annotations

from fastapi import APIRouter, Request

from billing_shared import clock
from billing_shared.auth import AdminPrincipal

from ..service.billing_run import run_billing
from .deps import database
from .schemas import BillingRunOut, BillingRunRequest

router = APIRouter(prefix="/api/billing-runs", tags=["billing"])


@router.post(
    "",
    response_model=BillingRunOut,
    summary="Run billing as of an instant (admin; default now)",
    description="Resumes paused subscriptions whose resumes_at has come, then renews every trialing, active "
    "or past_due subscription whose period ended at or before as_of, one period at a time (as_of three months "
    "ahead gives three renewals, each its own subscription.renewed), and ends those set to cancel at period "
    "end. Safe to run concurrently with other runs and replicas; an as_of before the periods' ends does nothing.",
)
async def create_billing_run(request: Request, admin: AdminPrincipal, body: BillingRunRequest | None = None) -> BillingRunOut:
    settings = request.app.state.settings
    now = clock.now()
    as_of = body.as_of if body and body.as_of else now
    clock.check_as_of(as_of, now, settings.subscription_max_as_of_ahead_days)
    summary = await run_billing(
        database(request),
        as_of,
        batch_size=settings.subscription_billing_batch_size,
        concurrency=settings.subscription_billing_concurrency,
    )
    return BillingRunOut(**summary.as_dict())
