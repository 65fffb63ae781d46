"""Exchange an API key for a short-lived access token."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from billing_shared.auth import issue_token, unauthorized

from ..db.models import ApiKey, Customer
from ..domain.api_keys import hash_api_key
from .schemas import AccessToken

router = APIRouter(prefix="/api/auth", tags=["auth"])

_api_key = HTTPBearer(auto_error=False, description="An API key issued by POST /api/customers/{id}/api_keys")


@router.post("/token", response_model=AccessToken, summary="Exchange an API key (Bearer) for an access token")
async def create_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_api_key)]
) -> AccessToken:
    if credentials is None:
        raise unauthorized("send your API key as 'Authorization: Bearer <key>'")
    settings = request.app.state.settings
    async with request.app.state.runtime.db.reads() as session:
        row = (
            await session.execute(
                select(Customer.id, Customer.role)
                .join(ApiKey, ApiKey.customer_id == Customer.id)
                .where(ApiKey.key_hash == hash_api_key(credentials.credentials), ApiKey.revoked_at.is_(None))
            )
        ).first()
    if row is None:
        raise unauthorized("unknown or revoked API key")
    token = issue_token(
        request.app.state.private_key,
        customer_id=row.id,
        role=row.role,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        ttl=timedelta(seconds=settings.access_token_ttl_s),
    )
    return AccessToken(access_token=token, expires_in=settings.access_token_ttl_s)
