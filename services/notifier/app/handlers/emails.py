"""Every customer-facing event: plan its email (pure), then deliver it once."""

from __future__ import annotations

import logging

from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope

from ..delivery import EmailDelivery
from ..domain.emails import plan_email

log = logging.getLogger(__name__)


async def handle_emailed_event(envelope: Envelope, uow: UnitOfWork, *, delivery: EmailDelivery) -> None:
    plan = plan_email(envelope, delivery.settings.public_base_url)
    if plan is None:
        log.info("%s %s needs no email (nothing due or paid, or a correction)", envelope.type, envelope.event_id)
        return
    await delivery.deliver(envelope, uow, plan)
