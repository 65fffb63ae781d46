"""Where the slow steps sit in a delivery: the PDF is fetched before the log row (and its lock) is written.

On the running app's database, SMTP sink and invoice API stand-in; the real repository and PDF client are only
wrapped, to record when they are called.
"""

from __future__ import annotations

import email.policy
import uuid
from email import message_from_bytes
from typing import Any

import pytest
from sqlalchemy import select, text

from app.db import repository
from app.db.models import Notification
from app.domain.emails import plan_email
from app.invoice_pdf import InvoicePdfClient
from app.settings import Settings
from billing_shared.contracts import CustomerCreated, InvoiceFinalized
from billing_shared.db import sql_name
from billing_shared.events import Envelope
from billing_shared.testing import EventBus
from tests.fakes import PDF_BYTES, FakeInvoiceApi, SmtpSink
from tests.support import T0, days, new_customer, unique_email, wait_for_mail, wait_until_handled

# The locks a backend holds on the notification log table (the claim's INSERT takes RowExclusiveLock).
_LOG_LOCKS = text("SELECT mode FROM pg_locks WHERE pid = :pid AND relation = CAST(:log AS regclass) ORDER BY mode")


async def test_the_pdf_is_fetched_before_the_notification_row_is_claimed(
    app: Any, bus: EventBus, mail: SmtpSink, invoice_api: FakeInvoiceApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, delivery = app.state.runtime.db, app.state.delivery
    customer_id, address = await new_customer(bus, mail)
    event = InvoiceFinalized(
        invoice_id=uuid.uuid4(), number="INV-1", customer_id=customer_id, currency="USD", total=4999,
        amount_due=4999, due_at=T0 + days(14),
    )
    invoice_api.pdf_invoice_ids.add(str(event.invoice_id))
    envelope = Envelope(type=event.type, producer="test", payload=event.model_dump(mode="json"))
    plan = plan_email(envelope, delivery.settings.public_base_url)
    assert plan is not None and plan.attach_invoice_id == event.invoice_id
    steps: list[tuple[str, list[str]]] = []  # each step, and the locks the delivery's transaction then held on the log
    fetch, claim = InvoicePdfClient.fetch, repository.claim_notification

    async with db.uow() as uow:  # as the consumer gives a handler (this test's delivery goes no further than here)
        backend = await uow.session.scalar(text("SELECT pg_backend_pid()"))

        async def log_locks() -> list[str]:
            async with db.sessions() as session:
                found = await session.scalars(_LOG_LOCKS, {"pid": backend, "log": sql_name(Notification.__table__)})
                return list(found)

        async def recording_fetch(self: InvoicePdfClient, invoice_id: uuid.UUID, signed_url: str | None = None) -> Any:
            pdf = await fetch(self, invoice_id, signed_url)
            if invoice_id == event.invoice_id:  # not another test's email the consumer may still be sending
                steps.append(("fetch pdf", await log_locks()))
            return pdf

        async def recording_claim(session: Any, values: dict[str, Any]) -> uuid.UUID | None:
            notification_id = await claim(session, values)
            if values["event_id"] == envelope.event_id:
                steps.append(("claim log row", await log_locks()))
            return notification_id

        monkeypatch.setattr(InvoicePdfClient, "fetch", recording_fetch)
        monkeypatch.setattr(repository, "claim_notification", recording_claim)
        await delivery.deliver(envelope, uow, plan)
        await uow.commit()

    # Fetched (and done) while the transaction held nothing on the log; the claim then took its lock.
    assert steps == [("fetch pdf", []), ("claim log row", ["RowExclusiveLock"])]
    _, sent = await wait_for_mail(mail, address, count=2)
    assert [part.get_content() for part in sent.iter_attachments()] == [PDF_BYTES]


async def test_the_log_row_keeps_the_subject_as_the_customer_reads_it_not_its_encoded_form(
    app: Any, bus: EventBus, mail: SmtpSink
) -> None:
    address = unique_email("zoe")
    created = await bus.publish(
        CustomerCreated(customer_id=uuid.uuid4(), email=address, name="Zoë Müller"), occurred_at=T0
    )

    [welcome] = await wait_for_mail(mail, address)
    await wait_until_handled(app, created.event_id)  # the log row commits with the consumer's inbox row

    async with app.state.runtime.db.sessions() as session:
        [logged] = (await session.scalars(select(Notification).where(Notification.event_id == created.event_id))).all()
    on_the_wire = message_from_bytes(mail.raw[mail.messages.index(welcome)], policy=email.policy.compat32)
    assert "=?utf-8?" in str(on_the_wire["Subject"]).lower()  # sent RFC 2047-encoded ...
    assert logged.subject == welcome["Subject"] == "Welcome, Zoë Müller"  # ... logged as read
    assert logged.message_id == welcome["Message-ID"] == f"<{created.event_id}.welcome@example.com>"
    assert logged.has_attachment is False


@pytest.mark.parametrize("prefetch, pool_size, overflow", [(10, 5, 5), (9, 4, 4), (0, 5, 5)])
def test_a_prefetch_the_pool_cannot_serve_is_refused(prefetch: int, pool_size: int, overflow: int) -> None:
    with pytest.raises(ValueError, match="PREFETCH"):
        Settings(prefetch=prefetch, db_pool_size=pool_size, db_max_overflow=overflow)


def test_the_default_prefetch_leaves_a_connection_spare() -> None:
    settings = Settings()
    assert settings.prefetch + 1 <= settings.db_pool_size + settings.db_max_overflow


@pytest.mark.parametrize(("api_url", "attaches"), [("http://gateway:8080", True), ("", False), (None, False)])
def test_pdfs_are_attached_only_with_an_invoice_api_to_fetch_them_from(api_url: str | None, attaches: bool) -> None:
    from app.main import build_delivery

    delivery = build_delivery(Settings(_env_file=None, notifier_invoice_api_url=api_url, notifier_api_key=None))
    assert (delivery.invoice_pdfs is not None) is attaches
