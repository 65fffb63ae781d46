"""Dunning cases with their attempt timelines, and each service's dead letters with a replay button."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from ..rendering import first_of, render, with_query
from ..security import PREFIX, Admin, CheckedForm, state_of
from ..upstream import UpstreamError, UpstreamUnauthorized, settle
from .lists import Cursor, Text, render_list, status_filters

router = APIRouter(prefix=PREFIX, tags=["operations"])

DUNNING_STATUSES = ("open", "recovered", "exhausted", "canceled")
SERVICES = ("customer", "payment", "subscription", "invoice", "dunning", "notifier")
Service = Literal["customer", "payment", "subscription", "invoice", "dunning", "notifier"]
DEAD_LETTERS_SHOWN = 50


@router.get("/dunning", summary="Dunning cases")
async def list_dunning_cases(
    request: Request, admin: Admin, status: Text = None, customer_id: Text = None, cursor: Cursor = None
) -> Response:
    return await render_list(
        request, admin, template="dunning_cases.html", active="dunning", api_path="/api/dunning/cases",
        filters=status_filters(status, DUNNING_STATUSES, customer_id), cursor=cursor,
        extra={"statuses": DUNNING_STATUSES},
    )


def timeline(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's attempts in order: by attempt number, then by the first time each one carries."""
    attempts = case.get("attempts")
    rows = [a for a in attempts if isinstance(a, dict)] if isinstance(attempts, list) else []

    def order(attempt: dict[str, Any]) -> tuple[float, str]:
        number = attempt.get("attempt")
        at = first_of(attempt, "due_at", "dispatched_at", "failed_at", "succeeded_at")
        return (number if isinstance(number, int) else float("inf"), str(at or ""))

    return sorted(rows, key=order)


@router.get("/dunning/{case_id}", summary="A dunning case and its attempt timeline")
async def read_dunning_case(request: Request, admin: Admin, case_id: uuid.UUID) -> Response:
    case, error = await settle(state_of(request).api.get(f"/api/dunning/cases/{case_id}", admin.token))
    case = case if isinstance(case, dict) else None
    context = {
        "admin": admin, "csrf": admin.csrf, "active": "dunning", "case_id": str(case_id),
        "case": case, "error": error, "attempts": timeline(case) if case else [],
    }
    return render(request, "dunning_case.html", context, status_code=404 if error and error.status == 404 else 200)


@router.get("/dead-letters", summary="Dead letters of every service")
async def list_dead_letters(
    request: Request,
    admin: Admin,
    replayed: Annotated[int | None, Query(ge=0)] = None,
    kept: Annotated[int | None, Query(ge=0)] = None,
    service: Annotated[str | None, Query(max_length=40)] = None,
    failed: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    api = state_of(request).api
    results = await asyncio.gather(
        *(settle(api.get(f"/api/{name}/dead-letters", admin.token, limit=DEAD_LETTERS_SHOWN)) for name in SERVICES)
    )
    queues = []
    for name, (body, error) in zip(SERVICES, results):
        letters = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), list) else None
        if letters is None and error is None:
            error = UpstreamError(f"/api/{name}/dead-letters", None, "answered with an unexpected shape")
        queues.append({"service": name, "letters": letters or [], "error": error})
    notice = None
    if service in SERVICES and replayed is not None:
        notice = f"Replayed {replayed} message{'s' if replayed != 1 else ''} from the {service} dead-letter queue."
        if kept:
            notice += (
                f" Kept back {kept}: older than the service's inbox keeps, so one handled after all would be"
                f" applied twice. Check the {service} service's records, then replay it by its event id with"
                f" POST /api/{service}/dead-letters/replay?force=true."
            )
    elif service in SERVICES and failed:
        notice = f"Replay from the {service} dead-letter queue failed: the service is unavailable."
    context = {
        "admin": admin, "csrf": admin.csrf, "active": "dead_letters", "queues": queues,
        "shown": DEAD_LETTERS_SHOWN, "notice": notice,
    }
    return render(request, "dead_letters.html", context)


@router.post("/dead-letters/{service}/replay", summary="Replay a service's dead letters (all, or one event)")
async def replay_dead_letters(request: Request, admin: Admin, form: CheckedForm, service: Service) -> Response:
    raw_event_id = form.get("event_id")
    event_ids = [raw_event_id.strip()] if isinstance(raw_event_id, str) and raw_event_id.strip() else None
    back = f"{PREFIX}/dead-letters"
    try:
        body = await state_of(request).api.request(
            "POST", f"/api/{service}/dead-letters/replay", token=admin.token, json=event_ids
        )
    except UpstreamUnauthorized:
        raise
    except UpstreamError:
        return RedirectResponse(with_query(back, service=service, failed="1") + f"#{service}", status_code=303)
    count = body.get("replayed") if isinstance(body, dict) and isinstance(body.get("replayed"), int) else 0
    kept = len(body["kept"]) if isinstance(body, dict) and isinstance(body.get("kept"), list) else 0
    query = {"service": service, "replayed": count} | ({"kept": kept} if kept else {})
    return RedirectResponse(with_query(back, **query) + f"#{service}", status_code=303)
