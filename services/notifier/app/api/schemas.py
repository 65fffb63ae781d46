"""Response bodies of the notifier API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    customer_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    template: str
    recipient: str
    subject: str
    status: Literal["sent", "rejected"]
    error: str | None = Field(
        None, description="Why a rejected email was refused: the SMTP server's reply for an admin, a neutral sentence "
        "for a user"
    )
    has_attachment: bool
    sent_at: datetime


class NotificationPage(BaseModel):
    data: list[NotificationOut]
    has_more: bool
    next_cursor: str | None = None
