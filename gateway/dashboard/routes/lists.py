"""Paginated lists (customers, subscriptions, invoices, payments) and a customer's page."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from ..rendering import render, with_query
from ..security import PREFIX, Admin, state_of
from ..upstream import settle

router = APIRouter(prefix=PREFIX, tags=["lists"])

Text = Annotated[str | None, Query(max_length=200)]
Cursor = Annotated[str | None, Query(max_length=200)]

SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "paused", "suspended", "canceled")
INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "unknown")


def valid_uuid(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(value)) if value else None
    except ValueError:
        return None


async def render_list(
    request: Request, admin: Admin, *, template: str, active: str, api_path: str,
    filters: dict[str, Any], cursor: str | None, extra: dict[str, Any] | None = None,
) -> Response:
    """One page from the API (never the whole table), with a Next link that carries its cursor."""
    state = state_of(request)
    limit = state.settings.dashboard_page_size
    page, error = await settle(state.api.get_page(api_path, admin.token, **filters, cursor=cursor, limit=limit))
    here = request.url.path
    context = {
        "admin": admin,
        "csrf": admin.csrf,
        "active": active,
        "rows": page.data if page else [],
        "error": error,
        "filters": filters,
        "next_url": with_query(here, **filters, cursor=page.next_cursor) if page and page.next_cursor else None,
        "first_url": with_query(here, **filters) if cursor else None,
    }
    return render(request, template, context | (extra or {}))


@router.get("/customers", summary="Customers, with search")
async def list_customers(request: Request, admin: Admin, q: Text = None, cursor: Cursor = None) -> Response:
    filters = {"q": (q or "").strip() or None}
    return await render_list(
        request, admin, template="customers.html", active="customers", api_path="/api/customers",
        filters=filters, cursor=cursor,
    )


@router.get("/customers/{customer_id}", summary="A customer with their first subscriptions and invoices")
async def read_customer(request: Request, admin: Admin, customer_id: uuid.UUID) -> Response:
    state = state_of(request)
    api, token, limit = state.api, admin.token, state.settings.dashboard_page_size
    (customer, error), (subscriptions, subscriptions_error), (invoices, invoices_error) = await asyncio.gather(
        settle(api.get(f"/api/customers/{customer_id}", token)),
        settle(api.get_page("/api/subscriptions", token, customer_id=str(customer_id), limit=limit)),
        settle(api.get_page("/api/invoices", token, customer_id=str(customer_id), limit=limit)),
    )
    context = {
        "admin": admin, "csrf": admin.csrf, "active": "customers", "customer_id": str(customer_id),
        "customer": customer if isinstance(customer, dict) else None, "error": error,
        "subscriptions": subscriptions, "subscriptions_error": subscriptions_error,
        "invoices": invoices, "invoices_error": invoices_error,
    }
    return render(request, "customer.html", context, status_code=404 if error and error.status == 404 else 200)


def status_filters(status: str | None, allowed: tuple[str, ...], customer_id: str | None) -> dict[str, Any]:
    return {"status": status if status in allowed else None, "customer_id": valid_uuid(customer_id)}


@router.get("/subscriptions", summary="Subscriptions, filtered by status")
async def list_subscriptions(
    request: Request, admin: Admin, status: Text = None, customer_id: Text = None, cursor: Cursor = None
) -> Response:
    return await render_list(
        request, admin, template="subscriptions.html", active="subscriptions", api_path="/api/subscriptions",
        filters=status_filters(status, SUBSCRIPTION_STATUSES, customer_id), cursor=cursor,
        extra={"statuses": SUBSCRIPTION_STATUSES},
    )


@router.get("/invoices", summary="Invoices, filtered by status")
async def list_invoices(
    request: Request, admin: Admin, status: Text = None, customer_id: Text = None, cursor: Cursor = None
) -> Response:
    return await render_list(
        request, admin, template="invoices.html", active="invoices", api_path="/api/invoices",
        filters=status_filters(status, INVOICE_STATUSES, customer_id), cursor=cursor,
        extra={"statuses": INVOICE_STATUSES},
    )


@router.get("/payments", summary="Payments")
async def list_payments(
    request: Request, admin: Admin, status: Text = None, customer_id: Text = None, cursor: Cursor = None
) -> Response:
    return await render_list(
        request, admin, template="payments.html", active="payments", api_path="/api/payments",
        filters=status_filters(status, PAYMENT_STATUSES, customer_id), cursor=cursor,
        extra={"statuses": PAYMENT_STATUSES},
    )
