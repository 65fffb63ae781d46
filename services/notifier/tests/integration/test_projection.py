"""The customer projection: addresses come from customer events, never from a call to the customer service."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from billing_shared.contracts import CustomerUpdated, DunningFinalNotice
from billing_shared.testing import EventBus
from tests.support import T0, days, mails_to, new_customer, unique_email, wait_for_mail, wait_until_handled

if TYPE_CHECKING:
    from tests.fakes import SmtpSink


def final_notice(customer_id: uuid.UUID) -> DunningFinalNotice:
    return DunningFinalNotice(case_id=uuid.uuid4(), customer_id=customer_id, amount=500, currency="USD", retry_at=T0)


async def test_an_email_change_is_honoured_for_later_emails(bus: EventBus, mail: SmtpSink, app: Any) -> None:
    customer_id, old_email = await new_customer(bus, mail)
    new_email = unique_email("moved")

    update = await bus.publish(
        CustomerUpdated(customer_id=customer_id, email=new_email, name="Ada King"), occurred_at=T0 + days(1)
    )
    await wait_until_handled(app, update.event_id)
    await bus.publish(final_notice(customer_id))

    [notice] = await wait_for_mail(mail, new_email)
    assert notice["Subject"].startswith("Final notice")
    assert "Hello Ada King," in notice.get_body(("plain",)).get_content()
    assert [m["Subject"] for m in mails_to(mail, old_email)] == ["Welcome, Ada Lovelace"]


async def test_a_stale_update_arriving_late_does_not_bring_back_an_old_address(
    bus: EventBus, mail: SmtpSink, app: Any
) -> None:
    customer_id, _ = await new_customer(bus, mail)
    newest, stale = unique_email("newest"), unique_email("stale")

    fresh = await bus.publish(CustomerUpdated(customer_id=customer_id, email=newest), occurred_at=T0 + days(2))
    await wait_until_handled(app, fresh.event_id)
    late = await bus.publish(CustomerUpdated(customer_id=customer_id, email=stale), occurred_at=T0 + days(1))
    await wait_until_handled(app, late.event_id)
    await bus.publish(final_notice(customer_id))

    await wait_for_mail(mail, newest)
    assert mails_to(mail, stale) == []
