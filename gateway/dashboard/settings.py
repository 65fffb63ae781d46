"""Dashboard configuration from the environment, with working local defaults (refused in production)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from billing_shared.settings import Environment

LOCAL_SESSION_SECRET = "local-dashboard-session-secret-not-for-production"


class DashboardSettings(BaseSettings):
    """Where the APIs are, how sessions are signed, and the key that verifies access tokens."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, populate_by_name=True)

    environment: Environment = Field("local", description="local | test | production")
    log_level: str = "INFO"

    # The public gateway: the dashboard is a client of the services' APIs like any other.
    dashboard_api_base_url: str = Field(
        "http://127.0.0.1:8080",
        validation_alias=AliasChoices("dashboard_api_base_url", "services_base_url"),
    )
    dashboard_api_timeout_s: float = 5.0
    dashboard_page_size: int = Field(25, ge=1, le=100)

    dashboard_session_secret: str = LOCAL_SESSION_SECRET
    dashboard_cookie_secure: bool = False

    jwt_issuer: str = "billing-customer"
    jwt_audience: str = "billing-api"
    dashboard_jwt_public_key: str = Field(
        "", validation_alias=AliasChoices("dashboard_jwt_public_key", "jwt_public_key")
    )
    jwt_public_key_file: Path | None = None

    @model_validator(mode="after")
    def _refuse_local_secrets_in_production(self) -> "DashboardSettings":
        if self.environment == "production":
            if self.dashboard_session_secret == LOCAL_SESSION_SECRET or len(self.dashboard_session_secret) < 32:
                raise ValueError(
                    "DASHBOARD_SESSION_SECRET must be set to a random value of at least 32 characters in production"
                )
            if not self.dashboard_cookie_secure:
                raise ValueError("DASHBOARD_COOKIE_SECURE must be true in production: the session cookie is HTTPS-only")
        return self

    @property
    def api_base_url(self) -> str:
        return self.dashboard_api_base_url.rstrip("/")

    def public_key_pem(self) -> str:
        if self.dashboard_jwt_public_key:
            return self.dashboard_jwt_public_key
        if self.jwt_public_key_file and self.jwt_public_key_file.exists():
            return self.jwt_public_key_file.read_text()
        raise RuntimeError(
            "no JWT public key for the dashboard: set DASHBOARD_JWT_PUBLIC_KEY, JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE"
        )
