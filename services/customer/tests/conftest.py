"""Customer service fixtures: a migrated database of its own and the running app."""

from __future__ import annotations

import uuid

import pytest

from billing_shared.testing import TestInfra, running

pytest_plugins = ["billing_shared.testing"]


@pytest.fixture(scope="session")
def service_name() -> str:
    return "customer"


@pytest.fixture(scope="session")
async def client(service_env: TestInfra):
    from app.main import create_app

    async with running(create_app()) as http:
        yield http


@pytest.fixture(scope="session")
def admin_headers(service_env: TestInfra) -> dict[str, str]:
    return service_env.auth(uuid.uuid4(), "admin")


@pytest.fixture
def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"
