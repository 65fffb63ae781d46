"""Dunning service fixtures: a migrated database of its own, the running app and a view of the broker."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing_shared.testing import EventBus, TestInfra, running

pytest_plugins = ["billing_shared.testing"]

SCHEDULE = "2,3"  # the default: retry after 2 days, then 3 days; 3 failures in all
_epochs = itertools.count()
TESTS_MAX_AS_OF_AHEAD_DAYS = 200 * 366


@pytest.fixture(scope="session")
def service_name() -> str:
    return "dunning"


@pytest.fixture(scope="session")
def app(service_env: TestInfra):
    from app.main import create_app
    from app.settings import Settings

    # Time moves only through POST /api/dunning/runs {"as_of": ...}: no wall-clock scheduler here.
    # Small batches, so runs take several transactions and concurrent runs interleave.
    # Each test lives in its own stretch of simulated time from 2100 on (see `epoch`): runs may reach 200 years ahead.
    return create_app(Settings(dunning_retry_days=SCHEDULE, run_scheduler=False, dunning_scheduler_batch_size=5,
                               dunning_max_as_of_ahead_days=TESTS_MAX_AS_OF_AHEAD_DAYS))


@pytest.fixture(scope="session")
async def client(app):
    async with running(app) as http:
        yield http


@pytest.fixture(scope="session")
def admin_headers(service_env: TestInfra) -> dict[str, str]:
    return service_env.auth(uuid.uuid4(), "admin")


@pytest.fixture
async def bus(service_env: TestInfra):
    async with EventBus(service_env.amqp_url) as events:
        await events.record("dunning.*")
        yield events


@pytest.fixture
async def epoch(client, admin_headers) -> datetime:
    """A business time of this test's own, years after every earlier test's, with older retries drained.

    Runs take every retry due by as_of, so each test lives in its own stretch of (simulated) time.
    """
    start = datetime(2100, 1, 1, tzinfo=UTC) + timedelta(days=400 * next(_epochs))
    drained = await client.post("/api/dunning/runs", json={"as_of": start.isoformat()}, headers=admin_headers)
    assert drained.status_code == 200, drained.text
    return start
