"""Payment service fixtures: the mock card provider as a real process, a migrated database of its own,
the running app (relay and consumer on the session's RabbitMQ vhost) and helpers to add cards.
"""

from __future__ import annotations

import os
import uuid
from contextlib import asynccontextmanager
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.adapters.gateway import HttpMockGateway
from billing_shared.testing import EventBus, TestInfra, running, wait_for
from tests.gateway_process import MockGatewayProcesses

pytest_plugins = ["billing_shared.testing"]

SUCCESS_CARD = "4242424242424242"
HARD_DECLINE_CARD = "4000000000000002"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"
PROCESSING_ERROR_CARD = "4000000000000119"
TIMEOUT_CARD = "4000000000000259"
AMEX_CARD = "378282246310005"


@pytest.fixture(scope="session")
def mock_gateway_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MockGatewayProcesses]:
    processes = MockGatewayProcesses(tmp_path_factory.mktemp("mock_gateway"))
    yield processes
    processes.stop_all()


@pytest.fixture(scope="session")
def mock_gateway_url(mock_gateway_processes: MockGatewayProcesses) -> str:
    # A little latency keeps the window open in which concurrent duplicates could slip through.
    return mock_gateway_processes.start(MOCK_GATEWAY_SEED="42", MOCK_GATEWAY_LATENCY_MS="20")


@pytest.fixture
def gateway_stats(mock_gateway_url: str) -> Callable[[], dict[str, int]]:
    """Reads the mock provider's counters (charges actually created, calls received, refunds)."""
    return lambda: httpx.get(f"{mock_gateway_url}/_stats").json()


@pytest.fixture
async def gateway(mock_gateway_url: str) -> AsyncIterator[HttpMockGateway]:
    """An adapter on a freshly reset mock provider."""
    httpx.post(f"{mock_gateway_url}/_reset").raise_for_status()
    async with HttpMockGateway(mock_gateway_url, timeout_s=5.0) as adapter:
        yield adapter


# --- the payment service ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def service_name() -> str:
    return "payment"


@pytest.fixture(scope="session")
def payment_env(service_env: TestInfra, mock_gateway_url: str) -> TestInfra:
    """The service's environment: the mock provider, a generous timeout (tests that want a timeout set
    their own), and no periodic reconciler (tests reconcile explicitly, or start one of their own)."""
    os.environ.update(
        {
            "PAYMENT_GATEWAY_URL": mock_gateway_url,
            "PAYMENT_GATEWAY_TIMEOUT_S": "5",
            "RUN_SCHEDULER": "false",
            # Postgres is shared with other suites on this machine: small pools per app instance.
            "DB_POOL_SIZE": "4",
            "DB_MAX_OVERFLOW": "8",
        }
    )
    return service_env


@pytest.fixture(scope="session")
async def payment_app(payment_env: TestInfra) -> AsyncIterator[Any]:
    from app.main import create_app

    app = create_app()
    async with running(app) as http:
        app.state.test_client = http
        yield app


@pytest.fixture(scope="session")
def start_replica(payment_env: TestInfra) -> Callable[..., Any]:
    """Another instance of the service on the same database and broker, with settings overridden:
    `async with start_replica(run_consumer=False) as (app, http): ...`."""

    @asynccontextmanager
    async def start(**overrides: Any) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
        from app.main import create_app
        from app.settings import Settings

        app = create_app(Settings(**overrides))
        async with running(app) as http:
            yield app, http

    return start


@pytest.fixture(scope="session")
def client(payment_app: Any) -> httpx.AsyncClient:
    return payment_app.state.test_client


@pytest.fixture(scope="session")
def db(payment_app: Any):
    return payment_app.state.runtime.db


@pytest.fixture(scope="session")
def admin_headers(service_env: TestInfra) -> dict[str, str]:
    return service_env.auth(uuid.uuid4(), "admin")


@pytest.fixture
def customer(service_env: TestInfra) -> tuple[uuid.UUID, dict[str, str]]:
    """A fresh customer id and its user's auth headers."""
    customer_id = uuid.uuid4()
    return customer_id, service_env.auth(customer_id)


def card_body(number: str = SUCCESS_CARD, cvc: str = "123", exp_month: int = 12, years_ahead: int = 3) -> dict[str, Any]:
    return {"card_number": number, "exp_month": exp_month, "exp_year": datetime.now(UTC).year + years_ahead, "cvc": cvc}


AddCard = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def add_card(client: httpx.AsyncClient) -> AddCard:
    """Adds a card for a customer through the API and returns the payment method."""

    async def add(customer_id: uuid.UUID, headers: dict[str, str], number: str = SUCCESS_CARD, **body: Any) -> dict:
        response = await client.post(
            f"/api/customers/{customer_id}/payment_methods", json={**card_body(number), **body}, headers=headers
        )
        assert response.status_code == 201, response.text
        return response.json()

    return add


def idem(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key or uuid.uuid4().hex}


async def events_about(bus: EventBus, event_type: str, count: int = 1, timeout: float = 10.0, **match: Any) -> list:
    """Wait for `count` events of a type whose payload has these values (other tests publish too)."""
    wanted = {k: str(v) if isinstance(v, uuid.UUID) else v for k, v in match.items()}

    async def found() -> list | None:
        hits = [e for e in bus.of_type(event_type) if all(e.payload.get(k) == v for k, v in wanted.items())]
        return hits if len(hits) >= count else None

    return await wait_for(found, timeout, message=f"{count} x {event_type} with {wanted}")
