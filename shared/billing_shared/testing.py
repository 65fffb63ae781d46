"""Pytest plugin for service tests on the real Postgres and RabbitMQ, isolated per test session.

Each session gets a fresh database (dropped afterwards), a fresh RabbitMQ vhost (deleted afterwards)
and its own JWT key pair. A service's conftest enables it with `pytest_plugins = ["billing_shared.testing"]`
and defines a `service_name` fixture; `service_env` then migrates that service and exports its settings.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aio_pika
import httpx
import pytest
from prometheus_client import REGISTRY

from . import bootstrap
from .amqp import envelope_message
from .auth import generate_keypair, issue_token
from .events import Envelope, Event, routing_key_of

ADMIN_DSN = os.environ.get("TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("TEST_AMQP_BASE_URL", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass
class TestInfra:
    database: str
    vhost: str
    amqp_url: str
    private_key: str
    public_key: str
    migrated: set[str] = field(default_factory=set)

    def database_url(self, service: str) -> str:
        return bootstrap.service_url(ADMIN_DSN, self.database, service)

    def admin_dsn(self) -> str:
        return bootstrap.with_database(ADMIN_DSN, self.database)

    def migrate(self, service: str) -> None:
        if service not in self.migrated:
            bootstrap.migrate(service, self.database_url(service))
            self.migrated.add(service)

    def token(self, customer_id: uuid.UUID | str, role: str = "user", ttl: timedelta = timedelta(minutes=15)) -> str:
        return issue_token(
            self.private_key,
            customer_id=uuid.UUID(str(customer_id)),
            role=role,  # type: ignore[arg-type]
            issuer="billing-customer",
            audience="billing-api",
            ttl=ttl,
        )

    def auth(self, customer_id: uuid.UUID | str, role: str = "user") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(customer_id, role)}"}


class RabbitmqctlError(subprocess.CalledProcessError):
    """A rabbitmqctl command that failed on every try; says what the CLI said."""

    def __str__(self) -> str:
        said = (self.stderr or self.stdout or "").strip()
        return f"{super().__str__()} It said: {said}" if said else super().__str__()


def _rabbitmqctl(*args: str, tries: int = 4, backoff_s: float = 0.5, timeout_s: float = 60) -> None:
    """Run a rabbitmqctl command, trying again after a short wait when it fails (the CLI may fail to reach the node
    for a moment): one glitch should not error the whole session."""
    command = ["rabbitmqctl", "-q", *args]
    for attempt in range(1, tries + 1):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            done = subprocess.CompletedProcess(command, -1, "", f"timed out after {timeout_s}s")
        if done.returncode == 0:
            return
        if attempt == tries:
            raise RabbitmqctlError(done.returncode, command, done.stdout, done.stderr)
        time.sleep(backoff_s * attempt)


def vhost_url(name: str) -> str:
    """The AMQP URL of a vhost on the local broker (made by create_vhost)."""
    return AMQP_BASE.rstrip("/") + "/" + name


def create_vhost(name: str) -> str:
    _rabbitmqctl("add_vhost", name)
    _rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
    return vhost_url(name)


async def delete_queues(amqp_url: str, *names: str) -> None:
    """Delete these queues (with what they hold; one that is not there is no error): a durable queue a test
    declared outlives it, and every later test's events bound to it are copied into it for the rest of the session."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        for name in names:
            await channel.queue_delete(name)


@pytest.fixture(scope="session")
def infra() -> Any:
    suffix = f"{time.strftime('%H%M%S')}_{secrets.token_hex(3)}"
    database, vhost = f"billing_t_{suffix}", f"billing_t_{suffix}"
    try:  # whatever was made is removed, also when making the rest failed
        asyncio.run(bootstrap.ensure_database(ADMIN_DSN, database))
        asyncio.run(bootstrap.apply_init_sql(ADMIN_DSN, database))
        amqp_url = create_vhost(vhost)
        private_key, public_key = generate_keypair()
        yield TestInfra(database, vhost, amqp_url, private_key, public_key)
    finally:
        asyncio.run(bootstrap.drop_database(ADMIN_DSN, database))
        try:
            _rabbitmqctl("delete_vhost", vhost)
        except subprocess.CalledProcessError:
            pass  # never made, or already gone


@pytest.fixture(scope="session")
def service_env(infra: TestInfra, service_name: str) -> TestInfra:
    """Migrate the service under test and export the environment its Settings read."""
    infra.migrate(service_name)
    os.environ.update(
        {
            "ENVIRONMENT": "test",
            "DATABASE_URL": infra.database_url(service_name),
            "AMQP_URL": infra.amqp_url,
            "JWT_PUBLIC_KEY": infra.public_key,
            "JWT_PRIVATE_KEY": infra.private_key,
            "HANDLER_RETRY_INITIAL_S": "0.01",
            "HANDLER_RETRY_MAX_S": "0.05",
            "REDELIVERY_BACKOFF_S": "0.05",
            "REDELIVERY_BACKOFF_MAX_S": "0.2",
            "RELAY_POLL_INTERVAL_S": "0.2",
        }
    )
    return infra


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Run an app's lifespan (relay, consumer) and give an HTTP client bound to it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


def events_handled(service: str, event_type: str, *outcomes: str) -> float:
    """How many deliveries of this type the service's consumer in this process has finished with these outcomes
    (handled, duplicate, failed; handled if none is named): `events_handled_total`, summed."""
    return sum(
        REGISTRY.get_sample_value("events_handled_total", {"service": service, "type": event_type, "outcome": o}) or 0.0
        for o in outcomes or ("handled",)
    )


async def wait_for(
    probe: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05, message: str = "condition"
) -> Any:
    """Poll `probe` until it returns something truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


class EventBus:
    """Publish events into, and record events out of, the session's vhost (a test's view of the broker)."""

    def __init__(self, amqp_url: str, exchange: str = "billing.events"):
        self.amqp_url = amqp_url
        self.exchange_name = exchange
        self.received: list[Envelope] = []
        self._connection: aio_pika.abc.AbstractRobustConnection | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None

    async def __aenter__(self) -> "EventBus":
        self._connection = await aio_pika.connect_robust(self.amqp_url)
        channel = await self._connection.channel(publisher_confirms=True)
        self._exchange = await channel.declare_exchange(self.exchange_name, aio_pika.ExchangeType.TOPIC, durable=True)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._connection is not None
        await self._connection.close()

    async def record(self, *routing_keys: str, durable_queue: str | None = None) -> None:
        """Start recording events of these types, whatever routing words follow the type (a private auto-delete
        queue, or a durable named one that survives connection loss)."""
        assert self._connection is not None and self._exchange is not None
        channel = await self._connection.channel()
        if durable_queue:
            queue = await channel.declare_queue(durable_queue, durable=True)
        else:
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        for key in routing_keys:
            await queue.bind(self._exchange, routing_key=key if key.endswith("#") else f"{key}.#")

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                self.received.append(Envelope.model_validate(json.loads(message.body)))

        await queue.consume(on_message)

    async def publish(
        self,
        event: Event | Envelope,
        *,
        event_id: uuid.UUID | None = None,
        headers: dict[str, Any] | None = None,
        **envelope: Any,
    ) -> Envelope:
        """Publish an event (wrapped in an envelope unless it is one), confirmed by the broker; `headers` are added
        to the message's (a retry's marks, say)."""
        assert self._exchange is not None
        if isinstance(event, Event):
            envelope.setdefault("producer", "test")
            env = Envelope(type=event.type, version=event.version, payload=event.model_dump(mode="json"), **envelope)
            if event_id is not None:
                env.event_id = event_id
        else:
            env = event
        message = envelope_message(env)
        if headers:
            message.headers = {**(message.headers or {}), **headers}
        await self._exchange.publish(message, routing_key=routing_key_of(env))
        return env

    def of_type(self, event_type: str) -> list[Envelope]:
        return [e for e in self.received if e.type == event_type]

    async def wait_for_type(
        self,
        event_type: str,
        count: int = 1,
        timeout: float = 10.0,
        where: Callable[[Envelope], bool] | None = None,
    ) -> list[Envelope]:
        """The events of this type received so far, once there are `count` (of those `where` accepts: another
        test's event of the same type may arrive first, on the same vhost)."""

        async def enough() -> list[Envelope] | None:
            found = [e for e in self.of_type(event_type) if where is None or where(e)]
            return found if len(found) >= count else None

        return await wait_for(enough, timeout, message=f"{count} x {event_type}")
