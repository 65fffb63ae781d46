"""Where the slow steps sit in a delivery: the PDF is fetched before the log row (and its lock) is written."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from app.db import repository
from app.db.repository import Recipient
from app.delivery import EmailDelivery
from app.domain.emails import plan_email
from app.settings import Settings
from app.smtp import SmtpSender
from billing_shared.contracts import CustomerCreated, InvoiceFinalized
from billing_shared.events import Envelope

CUSTOMER = uuid.uuid4()


class RecordingPdfs:
    def __init__(self, steps: list[str]) -> None:
        self.steps = steps

    async def fetch(self, invoice_id: uuid.UUID, signed_url: str | None = None) -> bytes:
        self.steps.append("fetch pdf")
        return b"%PDF-1.7 fake"


class FakeUow:
    session: Any = None


async def test_the_pdf_is_fetched_before_the_notification_row_is_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[str] = []

    async def get_recipient(session: Any, customer_id: uuid.UUID) -> Recipient:
        return Recipient(id=customer_id, email="ada@example.com", name="Ada")

    async def claim_notification(session: Any, values: dict[str, Any]) -> None:
        steps.append("claim log row")
        return None  # as if another delivery got there first: nothing is sent

    monkeypatch.setattr(repository, "get_recipient", get_recipient)
    monkeypatch.setattr(repository, "claim_notification", claim_notification)
    event = InvoiceFinalized(
        invoice_id=uuid.uuid4(), number="INV-1", customer_id=CUSTOMER, currency="USD", total=4999,
        amount_due=4999, due_at=datetime(2027, 3, 15, tzinfo=UTC),
    )
    envelope = Envelope(type=event.type, producer="test", payload=event.model_dump(mode="json"))
    plan = plan_email(envelope, "https://billing.example.com")
    assert plan is not None and plan.attach_invoice_id == event.invoice_id
    delivery = EmailDelivery(Settings(), SmtpSender("127.0.0.1", 1), RecordingPdfs(steps))  # type: ignore[arg-type]

    await delivery.deliver(envelope, FakeUow(), plan)  # type: ignore[arg-type]

    assert steps == ["fetch pdf", "claim log row"]


async def test_the_log_row_keeps_the_subject_as_the_customer_reads_it_not_its_encoded_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged: list[dict[str, Any]] = []

    async def get_recipient(session: Any, customer_id: uuid.UUID) -> Recipient:
        return Recipient(id=customer_id, email="zoe@example.com", name="Zoë Müller")

    async def claim_notification(session: Any, values: dict[str, Any]) -> None:
        logged.append(values)
        return None  # nothing is sent

    monkeypatch.setattr(repository, "get_recipient", get_recipient)
    monkeypatch.setattr(repository, "claim_notification", claim_notification)
    event = CustomerCreated(customer_id=CUSTOMER, email="zoe@example.com", name="Zoë Müller")
    envelope = Envelope(type=event.type, producer="test", payload=event.model_dump(mode="json"))
    plan = plan_email(envelope, "https://billing.example.com")
    assert plan is not None
    delivery = EmailDelivery(Settings(), SmtpSender("127.0.0.1", 1))

    await delivery.deliver(envelope, FakeUow(), plan)  # type: ignore[arg-type]

    [values] = logged
    assert values["subject"] == "Welcome, Zoë Müller"
    assert values["message_id"] == f"<{envelope.event_id}.welcome@example.com>"
    assert values["has_attachment"] is False


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
