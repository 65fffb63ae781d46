"""Dashboard fixtures: the app in front of a fake of the services' APIs, and a signed-in admin client."""

from __future__ import annotations

import re

import httpx
import pytest
from billing_shared.auth import generate_keypair
from fastapi import FastAPI

from dashboard.main import create_app
from dashboard.settings import DashboardSettings

from .fake_api import ADMIN_KEY, FakeApi, create_fake_api

BASE_URL = "http://dashboard.test"


@pytest.fixture(scope="session")
def keypairs() -> tuple[tuple[str, str], tuple[str, str]]:
    return generate_keypair(), generate_keypair()


@pytest.fixture
def fake(keypairs) -> FakeApi:
    (private, public), (other_private, _) = keypairs
    return FakeApi(private_key=private, other_private_key=other_private, public_key=public)


@pytest.fixture
def settings(fake: FakeApi) -> DashboardSettings:
    return DashboardSettings(
        environment="test",
        dashboard_api_base_url="http://api.test",
        dashboard_jwt_public_key=fake.public_key,
        dashboard_session_secret="test-session-secret-0123456789abcdef",
        dashboard_page_size=10,
    )


@pytest.fixture
def dashboard(settings: DashboardSettings, fake: FakeApi) -> FastAPI:
    return create_app(settings, transport=httpx.ASGITransport(app=create_fake_api(fake)))


@pytest.fixture
async def client(dashboard: FastAPI):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=dashboard), base_url=BASE_URL) as http:
        yield http


CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_FIELD.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, api_key: str, next_path: str | None = None) -> httpx.Response:
    form = await client.get("/dashboard/login", params={"next": next_path} if next_path else None)
    data = {"api_key": api_key, "csrf_token": csrf_of(form.text)}
    if next_path:
        data["next"] = next_path
    return await client.post("/dashboard/login", data=data)


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> httpx.AsyncClient:
    response = await sign_in(client, ADMIN_KEY)
    assert response.status_code == 303, response.text
    return client
