"""Customers and their API keys (only a hash of each key is stored)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import DateTime, ForeignKey, Index, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from billing_shared import clock
from billing_shared.db import make_metadata
from billing_shared.ids import new_id

metadata = make_metadata("customer")


class Base(DeclarativeBase):
    metadata = metadata


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20), default="user")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    def stamp_change(self) -> datetime:
        """Mark a change (or the creation) of this customer and return its instant, for its event to carry.

        The services that keep a copy of a customer keep the newest fact by that instant. Replicas' clocks differ
        a little, so an update served right after the create (or another update) by a replica whose clock runs
        behind would otherwise carry an older instant, and its email change would be dropped as stale.
        The row is locked (or new), so the next change always reads this one's instant."""
        at = clock.now(self.id)
        if self.updated_at is not None:
            at = max(at, self.updated_at + _TICK)
        if self.created_at is None:
            self.created_at = at
        self.updated_at = at
        return at


_TICK = timedelta(microseconds=1)  # the finest step Postgres and the event envelope keep


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_customer", "customer_id"),)

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=new_id)
    customer_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), ForeignKey("customer.customers.id"))
    prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
