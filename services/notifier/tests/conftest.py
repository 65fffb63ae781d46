"""Notifier fixtures: real SMTP sinks (aiosmtpd), a migrated database, the running app, the event bus.

`smtp_sink` is a fresh sink per test (for the SMTP sender alone); `mail` is the session's sink the running
app sends to; `invoice_api` is a stand-in for the invoice service's token and PDF endpoints.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from billing_shared.testing import EventBus, TestInfra, running
from tests.fakes import INVOICE_API_KEY, FakeInvoiceApi, SmtpSink

pytest_plugins = ["billing_shared.testing"]


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A running sink; call .stop() to simulate an outage and .start() to bring it back on the same port."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


# --- the running service ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def service_name() -> str:
    return "notifier"


@pytest.fixture(scope="session")
def mail() -> Iterator[SmtpSink]:
    """The SMTP server the running app sends to, for the whole session."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
async def invoice_api() -> AsyncIterator[FakeInvoiceApi]:
    fake = FakeInvoiceApi()
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=fake.port, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[fake.socket]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield fake
    server.should_exit = True
    await task


@pytest.fixture(scope="session")
def settings(service_env: TestInfra, mail: SmtpSink, invoice_api: FakeInvoiceApi) -> Any:
    from app.settings import Settings

    # Tiny SMTP backoff and a low delivery limit keep outage and dead-letter tests to seconds. An email for a customer
    # not known yet waits up to AWAITING_RETRY_S for its customer.created: an hour here (a test that needs it
    # dead-lettered publishes it as waiting that long already), far beyond any test's patience.
    return Settings(
        smtp_host=mail.host,
        smtp_port=mail.port,
        smtp_timeout_s=2,
        smtp_attempts=2,
        smtp_backoff_initial_s=0.1,
        smtp_backoff_max_s=0.2,
        delivery_limit=4,
        awaiting_retry_s=3600,
        public_base_url="https://billing.example.com",
        notifier_invoice_api_url=invoice_api.url,
        notifier_api_key=INVOICE_API_KEY,
    )


@pytest.fixture(scope="session")
async def app(settings: Any) -> Any:
    from app.main import create_app

    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app) as http:
        yield http


@pytest.fixture(scope="session")
async def bus(service_env: TestInfra, client: httpx.AsyncClient) -> AsyncIterator[EventBus]:
    """Publishes into the running app's queue (declared by then); records what the app announces."""
    async with EventBus(service_env.amqp_url) as events:
        await events.record("notification.sent")
        yield events


@pytest.fixture(scope="session")
def admin_headers(service_env: TestInfra) -> dict[str, str]:
    return service_env.auth(uuid.uuid4(), "admin")
