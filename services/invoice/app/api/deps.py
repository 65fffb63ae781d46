"""Request-scoped helpers: the database, invoicing terms, and who may read an invoice."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from billing_shared.auth import Principal, TokenVerifier, unauthorized
from billing_shared.db import Database
from billing_shared.errors import ApiError, not_found

from ..invoicing import Terms
from ..links import InvoiceLinks

_optional_bearer = HTTPBearer(auto_error=False, description="A JWT from POST /api/auth/token")


def database(request: Request) -> Database:
    return request.app.state.runtime.db


def terms(request: Request) -> Terms:
    return request.app.state.terms


def invoice_links(request: Request) -> InvoiceLinks:
    return terms(request).links


def check_visible(principal: Principal, customer_id: uuid.UUID) -> None:
    # A user asking about anyone else's invoice learns nothing, not even that it exists.
    if not principal.can_see(customer_id):
        raise not_found("invoice")


class PageAccess:
    """Who opens a page or PDF: a Bearer token (checked against the owner later) or a signed link."""

    def __init__(self, principal: Principal | None, signed_for: uuid.UUID | None):
        self.principal = principal
        self.signed_for = signed_for

    def check(self, invoice_id: uuid.UUID, customer_id: uuid.UUID) -> None:
        if self.signed_for == invoice_id:
            return
        if self.principal is None:
            raise unauthorized()
        check_visible(self.principal, customer_id)


async def page_access(
    invoice_id: uuid.UUID,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)],
    sig: Annotated[str | None, Query(max_length=100, description="a signed link token (html_url / pdf_url)")] = None,
) -> PageAccess:
    if sig is not None:
        if terms(request).links.verify(invoice_id, sig):
            return PageAccess(None, invoice_id)
        if credentials is None:
            raise ApiError(401, "invalid_link", "this invoice link is invalid or has expired", field="sig")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("a Bearer token or a signed link (sig) is required")
    verifier: TokenVerifier = request.app.state.token_verifier
    return PageAccess(verifier.verify(credentials.credentials), None)


DatabaseDep = Annotated[Database, Depends(database)]
LinksDep = Annotated[InvoiceLinks, Depends(invoice_links)]
PageAccessDep = Annotated[PageAccess, Depends(page_access)]
