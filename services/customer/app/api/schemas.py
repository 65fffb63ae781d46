"""Request and response bodies of the customer API (unknown fields are refused)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator

Role = Literal["user", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _normalise_email(value: str) -> str:
    return value.strip().lower()


class CustomerCreate(_Strict):
    email: EmailStr = Field(max_length=320)
    name: str = Field("", max_length=200)
    role: Role = "user"

    _email = field_validator("email", mode="after")(_normalise_email)


class CustomerUpdate(_Strict):
    email: EmailStr | None = Field(None, max_length=320)
    name: str | None = Field(None, max_length=200)
    role: Role | None = None

    _email = field_validator("email", mode="after")(lambda v: _normalise_email(v) if v else v)


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    email: str
    name: str
    role: Role
    created_at: datetime
    updated_at: datetime


class CustomerPage(BaseModel):
    data: list[CustomerOut]
    has_more: bool
    next_cursor: str | None = None


class ApiKeyCreate(_Strict):
    name: str = Field("", max_length=100)


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    customer_id: uuid.UUID
    prefix: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key itself. It is shown this once and cannot be retrieved later.")


class ApiKeyList(BaseModel):
    data: list[ApiKeyOut]
    has_more: bool = False
    next_cursor: str | None = None


class AccessToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
