"""Builds the customer service app (uvicorn --factory app.main:create_app)."""

from __future__ import annotations

from fastapi import FastAPI

from billing_shared.web import create_service_app

from .api import auth, customers
from .settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    app = create_service_app(
        settings,
        title="Customer service",
        description="Customers, roles and API keys; issues the access tokens every service verifies.",
        routers=[customers.router, auth.router],
    )
    app.state.private_key = settings.private_key_pem()
    return app
