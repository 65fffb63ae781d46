"""Subscription service fixtures: a migrated database of its own, the running app, a settable clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from billing_shared import clock
from billing_shared.testing import TestInfra, running

pytest_plugins = ["billing_shared.testing"]


@pytest.fixture(scope="session")
def service_name() -> str:
    return "subscription"


@pytest.fixture(scope="session")
async def app(service_env: TestInfra):
    from app.main import create_app
    from app.settings import Settings

    # The periodic billing run stays off: tests run billing explicitly, at the as_of they choose.
    return create_app(Settings(run_scheduler=False))


@pytest.fixture(scope="session")
async def client(app):
    async with running(app) as http:
        yield http


def long_lived_auth(infra: TestInfra, customer_id: uuid.UUID, role: str = "user") -> dict[str, str]:
    """A token valid for years, so tests may move the business clock (tokens are issued on it) into the past."""
    return {"Authorization": f"Bearer {infra.token(customer_id, role, ttl=timedelta(days=7300))}"}


@pytest.fixture(scope="session")
def admin_headers(service_env: TestInfra) -> dict[str, str]:
    return long_lived_auth(service_env, uuid.uuid4(), "admin")


@pytest.fixture(scope="session")
def db(app):
    return app.state.runtime.db


class TestClock:
    """Business time for the app under test: set it, and everything (periods, events) follows."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def set(self, *args: int) -> datetime:
        self.now = datetime(*args, tzinfo=UTC)
        return self.now


@pytest.fixture
def test_clock() -> Iterator[TestClock]:
    fake = TestClock(datetime(2024, 1, 1, tzinfo=UTC))
    clock.set_source(lambda customer_id=None: fake.now)
    yield fake
    clock.set_source(None)


@pytest.fixture
def customer_id() -> uuid.UUID:
    return uuid.uuid4()


@pytest.fixture
def user_headers(service_env: TestInfra, customer_id: uuid.UUID) -> dict[str, str]:
    return long_lived_auth(service_env, customer_id)
