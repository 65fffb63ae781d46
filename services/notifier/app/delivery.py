"""Send the email an event asks for, exactly once per (event, template).

Order inside the handler's transaction (the consumer's inbox row is already in it, so no earlier delivery of
this event committed: there is no log to read first):
  1. render, fetch the invoice PDF if wanted (never required), build the message;
  2. write the log row (sent) and the notification.sent outbox row, still uncommitted;
  3. hand the message to SMTP;  4. the consumer commits.
So after the SMTP server accepts, only the COMMIT is left. A crash in that window rolls back the log and
the inbox row, the event is redelivered and the email is sent again: at-least-once, never lost. The resend
carries the same Message-ID (derived from the event id), so mail stores and clients can drop the duplicate.
The uncommitted inbox and log rows also make a concurrent delivery of the same event wait, then skip.
Step 1 (the slow PDF fetch) takes no lock of its own; the consumer's transaction, and so one pool connection,
is open throughout, which is why settings bound PREFETCH by the pool.
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.message import Message

from billing_shared import clock
from billing_shared.consumer import Awaiting, Outage, Retryable
from billing_shared.contracts import NotificationSent
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope
from billing_shared.ids import new_id
from billing_shared.plumbing_tables import outbox_table
from sqlalchemy import delete

from .db import repository
from .db.repository import Recipient
from .domain.emails import EmailPlan, greeting_name, message_id
from .invoice_pdf import InvoicePdfClient
from .rendering import Attachment, RenderedEmail, build_message, render_email
from .settings import Settings
from .smtp import SmtpRecipientRefusedByPolicy, SmtpRejected, SmtpSender, SmtpUnavailable

log = logging.getLogger(__name__)


class CustomerNotYetKnown(Awaiting):
    """The projection has no such customer yet: its customer.created is still on the way, for as long as the
    customer service or its relay is down. So the email waits for it (up to AWAITING_RETRY_S), rather than reaching
    the DLQ after half a minute of quick tries; after that, the DLQ (a customer that does not exist)."""


class SmtpDown(Outage):
    """SMTP stayed unavailable through the sender's retries; the event waits for it (days, not a minute)."""


class EmailDelivery:
    def __init__(self, settings: Settings, sender: SmtpSender, invoice_pdfs: InvoicePdfClient | None = None) -> None:
        self.settings = settings
        self.sender = sender
        self.invoice_pdfs = invoice_pdfs

    async def deliver(self, envelope: Envelope, uow: UnitOfWork, plan: EmailPlan) -> None:
        session = uow.session
        customer = await repository.get_recipient(session, plan.customer_id)
        if customer is None:
            raise CustomerNotYetKnown(f"customer {plan.customer_id} not in the projection yet ({envelope.type})")

        sent_at = clock.now(customer.id)
        rendered, message = await self._compose(envelope, plan, customer, sent_at)
        values = {
            "id": new_id(),
            "event_id": envelope.event_id,
            "event_type": envelope.type,
            "template": plan.template,
            "customer_id": customer.id,
            "recipient": customer.email,
            "subject": rendered.subject[:500],  # as the customer reads it, not its RFC 2047 form
            "message_id": str(message["Message-ID"]),
            "has_attachment": message.is_multipart() and message.get_content_type() == "multipart/mixed",
            "sent_at": sent_at,
        }
        notification_id = await repository.claim_notification(session, values)
        if notification_id is None:  # another delivery of this event got there first
            return
        announced = uow.emit(
            NotificationSent(
                notification_id=notification_id,
                customer_id=customer.id,
                template=plan.template,
                source_event_id=envelope.event_id,
                recipient=customer.email,
            ),
            occurred_at=sent_at,
        )
        await uow.flush_outbox()  # so that nothing but the COMMIT follows the SMTP accept

        try:
            await self.sender.send(message)
        except SmtpRecipientRefusedByPolicy as exc:
            raise Retryable(str(exc)) from exc  # its tries, then the DLQ (see the exception); rolled back likewise
        except SmtpUnavailable as exc:
            raise SmtpDown(str(exc)) from exc  # the consumer rolls back the log and outbox rows
        except SmtpRejected as exc:
            # Final (5xx to this message): keep it in the log for support to see, announce nothing, do not retry.
            log.error("%s for event %s to %s rejected: %s", plan.template, envelope.event_id, customer.email, exc)
            outbox = outbox_table(self.settings.schema)
            await session.execute(delete(outbox).where(outbox.c.event_id == announced.event_id))
            await repository.mark_rejected(session, notification_id, str(exc))
            return
        log.info("sent %s for event %s to %s", plan.template, envelope.event_id, customer.email)

    async def _compose(
        self, envelope: Envelope, plan: EmailPlan, customer: Recipient, sent_at: datetime
    ) -> tuple[RenderedEmail, Message]:
        context = {**plan.context, "customer_name": greeting_name(customer.name, customer.email)}
        rendered = render_email(plan.template, context)
        attachments: list[Attachment] = []
        if plan.attach_invoice_id is not None:
            if self.invoice_pdfs is None:
                log.info("invoice %s: no invoice API configured, sending the link only", plan.attach_invoice_id)
            else:
                pdf = await self.invoice_pdfs.fetch(plan.attach_invoice_id, plan.attach_pdf_url)
                if pdf is not None:
                    attachments.append(Attachment(plan.attachment_name, pdf))
        sender = self.settings.notifier_sender
        return rendered, build_message(
            rendered,
            sender,
            customer.email,
            attachments,
            message_id=message_id(envelope.event_id, plan.template, sender),
            sent_at=sent_at,
        )

