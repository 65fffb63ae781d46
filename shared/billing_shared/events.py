"""The event envelope and the one catalog of event contracts.

Contracts are pure pydantic data, versioned and changed only additively; they are read tolerantly
(unknown fields ignored) so services can be deployed one at a time.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from . import clock
from .ids import new_id


class Event(BaseModel):
    """Base of every event payload; subclasses set `type` (the routing key) and `version`."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: ClassVar[str]
    version: ClassVar[int] = 1
    # True for a fact no service of this system consumes: published for listeners outside it (webhooks,
    # analytics, audit). The relay expects no queue to take it, and a consumer may not handle it.
    for_outside_listeners: ClassVar[bool] = False

    def routing_key(self) -> str:
        """The key it is published under: its type, then any words that let a consumer hear only part of it
        (a topic exchange binds on them). A consumer of every such event binds `<type>.#`."""
        return self.type


class Envelope(BaseModel):
    """What travels on the wire: metadata plus the payload as plain JSON."""

    model_config = ConfigDict(extra="ignore")

    event_id: uuid.UUID = Field(default_factory=new_id)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=clock.now)
    producer: str
    correlation_id: str | None = None
    causation_id: uuid.UUID | None = None
    payload: dict[str, Any]

    def payload_as(self, model: type[E]) -> E:
        return model.model_validate(self.payload)


E = TypeVar("E", bound=Event)

CATALOG: dict[str, type[Event]] = {}


def contract(cls: type[E]) -> type[E]:
    """Register an event class in the catalog under its routing key."""
    if cls.type in CATALOG:
        raise ValueError(f"event type {cls.type} registered twice")
    CATALOG[cls.type] = cls
    return cls


def for_outside_listeners(event_type: str) -> bool:
    """Whether events of this type are for listeners outside the system only (see Event.for_outside_listeners)."""
    model = CATALOG.get(event_type)
    return model is not None and model.for_outside_listeners


def routing_key_of(envelope: Envelope) -> str:
    """The routing key an envelope of a catalogued event travels under (its type for any other)."""
    model = CATALOG.get(envelope.type)
    return model.model_validate(envelope.payload).routing_key() if model is not None else envelope.type


def payload_model(event_type: str) -> type[Event]:
    try:
        return CATALOG[event_type]
    except KeyError:
        raise KeyError(f"unknown event type {event_type!r}") from None


# Import the contracts so the catalog is complete whenever this module is imported.
from . import contracts as _contracts  # noqa: E402,F401
