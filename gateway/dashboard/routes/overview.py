"""The overview page: key figures and charts."""

from __future__ import annotations

from billing_shared import clock
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..overview import load_overview
from ..rendering import render
from ..security import PREFIX, Admin, state_of

router = APIRouter(prefix=PREFIX, tags=["overview"])


@router.get("", summary="Key figures")
async def read_overview(request: Request, admin: Admin) -> Response:
    overview = await load_overview(state_of(request).api, admin.token, clock.now().date())
    context = {"admin": admin, "csrf": admin.csrf, "active": "overview", "overview": overview}
    return render(request, "overview.html", context)
