"""Admin operations on payments: dashboard statistics and an on-demand reconciliation run."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from billing_shared import clock
from billing_shared.auth import AdminPrincipal

from ..service_layer.reconciler import reconcile_due
from ..service_layer.stats import payment_stats
from .deps import Context
from .schemas import PaymentStats, ReconcileOut, ReconcileRequest

# Registered before the payments router, so /api/payments/stats is not read as a payment id.
router = APIRouter(prefix="/api/payments", tags=["operations"])


@router.get("/stats", response_model=PaymentStats, summary="Payments by status and amounts collected (admin)")
async def read_payment_stats(
    ctx: Context, admin: AdminPrincipal, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> PaymentStats:
    async with ctx.db.reads() as session:
        return PaymentStats.model_validate(await payment_stats(session, clock.now(), days))


@router.post("/reconcile", response_model=ReconcileOut, summary="Settle due unknown/stale payments now (admin)")
async def reconcile_payments(ctx: Context, admin: AdminPrincipal, body: ReconcileRequest | None = None) -> ReconcileOut:
    if body and body.as_of:
        clock.check_as_of(body.as_of, clock.now(), ctx.settings.payment_max_as_of_ahead_days)
    report = await reconcile_due(ctx, as_of=body.as_of if body else None)
    return ReconcileOut.model_validate(report.__dict__)
