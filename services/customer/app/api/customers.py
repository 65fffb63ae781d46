"""Customers and their API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from billing_shared import clock
from billing_shared.auth import AdminPrincipal, CurrentPrincipal, Principal
from billing_shared.contracts import CustomerCreated, CustomerUpdated
from billing_shared.db import Database
from billing_shared.errors import ApiError, not_found
from billing_shared.ids import new_id
from billing_shared.pagination import DEFAULT_LIMIT, MAX_LIMIT, fetch_page

from ..db.models import ApiKey, Customer
from ..domain.api_keys import generate_api_key
from .schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyOut,
    CustomerCreate,
    CustomerOut,
    CustomerPage,
    CustomerUpdate,
)

router = APIRouter(prefix="/api/customers", tags=["customers"])


def _db(request: Request) -> Database:
    return request.app.state.runtime.db


def _duplicate_email(email: str) -> ApiError:
    return ApiError(409, "email_taken", f"a customer with email {email} already exists", field="email")


def _check_access(principal: Principal, customer_id: uuid.UUID) -> None:
    # A user asking about anyone else learns nothing, not even that the customer exists.
    if not principal.can_see(customer_id):
        raise not_found("customer")


@router.post("", status_code=201, response_model=CustomerOut, summary="Create a customer (admin)")
async def create_customer(body: CustomerCreate, request: Request, admin: AdminPrincipal) -> CustomerOut:
    async with _db(request).uow() as uow:
        exists = await uow.session.scalar(select(Customer.id).where(Customer.email == body.email))
        if exists:
            raise _duplicate_email(body.email)
        customer = Customer(id=new_id(), email=body.email, name=body.name, role=body.role)
        created_at = customer.stamp_change()
        uow.session.add(customer)
        try:  # a concurrent create of the same email gets past the check above: its INSERT fails here instead
            await uow.session.flush()
            uow.emit(
                CustomerCreated(customer_id=customer.id, email=customer.email, name=customer.name, role=customer.role),
                occurred_at=created_at,
            )
            await uow.commit()
        except IntegrityError:
            raise _duplicate_email(body.email) from None
        return CustomerOut.model_validate(customer)  # its server defaults came back with the INSERT (RETURNING)


@router.get("", response_model=CustomerPage, summary="List customers (admin)")
async def list_customers(
    request: Request,
    admin: AdminPrincipal,
    q: Annotated[str | None, Query(max_length=200, description="search in email and name")] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> CustomerPage:
    stmt = select(Customer)
    if email:
        stmt = stmt.where(Customer.email == email.strip().lower())
    if q:
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(Customer.email.ilike(pattern), Customer.name.ilike(pattern)))
    async with _db(request).reads() as session:
        rows, next_cursor = await fetch_page(session, stmt, Customer.id, cursor, limit)
    return CustomerPage(
        data=[CustomerOut.model_validate(r) for r in rows], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@router.get("/{customer_id}", response_model=CustomerOut, summary="Read a customer (itself, or admin)")
async def read_customer(customer_id: uuid.UUID, request: Request, principal: CurrentPrincipal) -> CustomerOut:
    _check_access(principal, customer_id)
    async with _db(request).reads() as session:
        customer = await session.get(Customer, customer_id)
    if customer is None:
        raise not_found("customer")
    return CustomerOut.model_validate(customer)


@router.patch("/{customer_id}", response_model=CustomerOut, summary="Update a customer (itself, or admin)")
async def update_customer(
    customer_id: uuid.UUID, body: CustomerUpdate, request: Request, principal: CurrentPrincipal
) -> CustomerOut:
    _check_access(principal, customer_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "role" in changes and not principal.is_admin:
        raise ApiError(403, "forbidden", "only an admin can change a role", field="role")
    async with _db(request).uow() as uow:
        customer = await uow.session.get(Customer, customer_id, with_for_update=True)
        if customer is None:
            raise not_found("customer")
        if "email" in changes and changes["email"] != customer.email:
            taken = await uow.session.scalar(select(Customer.id).where(Customer.email == changes["email"]))
            if taken:
                raise _duplicate_email(changes["email"])
        changed = {k: v for k, v in changes.items() if getattr(customer, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(customer, key, value)
            uow.emit(
                CustomerUpdated(customer_id=customer.id, email=customer.email, name=customer.name, role=customer.role),
                occurred_at=customer.stamp_change(),
            )
            try:
                await uow.commit()
            except IntegrityError:  # only a new email can clash (the customer's own fields are expired now)
                raise _duplicate_email(changes["email"]) from None
        return CustomerOut.model_validate(customer)


@router.post(
    "/{customer_id}/api_keys",
    status_code=201,
    response_model=ApiKeyCreated,
    summary="Issue an API key (itself, or admin); the key is shown only in this response",
)
async def create_api_key(
    customer_id: uuid.UUID, request: Request, principal: CurrentPrincipal, body: ApiKeyCreate | None = None
) -> ApiKeyCreated:
    _check_access(principal, customer_id)
    settings = request.app.state.settings
    new_key = generate_api_key(settings.api_key_prefix)
    async with _db(request).uow() as uow:
        if await uow.session.get(Customer, customer_id) is None:
            raise not_found("customer")
        api_key = ApiKey(
            customer_id=customer_id, prefix=new_key.prefix, key_hash=new_key.key_hash, name=(body.name if body else "")
        )
        uow.session.add(api_key)
        await uow.session.flush()
        await uow.session.refresh(api_key)
        out = ApiKeyCreated(**ApiKeyOut.model_validate(api_key).model_dump(), key=new_key.key)
        await uow.commit()
    return out


@router.get("/{customer_id}/api_keys", response_model=ApiKeyList, summary="List API keys (never the keys themselves)")
async def list_api_keys(
    customer_id: uuid.UUID,
    request: Request,
    principal: CurrentPrincipal,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> ApiKeyList:
    _check_access(principal, customer_id)
    async with _db(request).reads() as session:
        if await session.get(Customer, customer_id) is None:
            raise not_found("customer")
        stmt = select(ApiKey).where(ApiKey.customer_id == customer_id)
        keys, next_cursor = await fetch_page(session, stmt, ApiKey.id, cursor, limit)
    return ApiKeyList(
        data=[ApiKeyOut.model_validate(k) for k in keys], has_more=next_cursor is not None, next_cursor=next_cursor
    )


@router.delete("/{customer_id}/api_keys/{key_id}", status_code=204, summary="Revoke an API key")
async def revoke_api_key(customer_id: uuid.UUID, key_id: uuid.UUID, request: Request, principal: CurrentPrincipal) -> Response:
    _check_access(principal, customer_id)
    async with _db(request).uow() as uow:
        api_key = await uow.session.get(ApiKey, key_id, with_for_update=True)
        if api_key is None or api_key.customer_id != customer_id:
            raise not_found("API key")
        if api_key.revoked_at is None:
            api_key.revoked_at = clock.now()
            await uow.commit()
    return Response(status_code=204)

