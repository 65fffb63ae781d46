"""Customer service settings (env vars; working local defaults)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import model_validator

from billing_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "customer"

    jwt_private_key: str = ""
    jwt_private_key_file: Path | None = None
    access_token_ttl_s: int = 900
    api_key_prefix: str = "bk"

    @model_validator(mode="after")
    def _refuse_missing_signing_key_in_production(self) -> "Settings":
        if self.environment == "production" and not (self.jwt_private_key or self.jwt_private_key_file):
            raise ValueError("JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE must be set in production")
        return self

    def private_key_pem(self) -> str:
        if self.jwt_private_key:
            return self.jwt_private_key
        if self.jwt_private_key_file and self.jwt_private_key_file.exists():
            return self.jwt_private_key_file.read_text()
        raise RuntimeError("no JWT private key: set JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE")
