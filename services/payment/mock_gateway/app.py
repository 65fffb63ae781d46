"""HTTP face of the mock card provider: a small Stripe-like JSON API over the in-memory Ledger."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The provider checks cards with the same rules as the service, so the two never disagree about a card.
from app.domain.cards import CardValidationError, normalize_card_number, validate_card
from mock_gateway.ledger import Ledger, ProviderError

# How often a hanging charge checks whether its client has given up.
_DISCONNECT_POLL_S = 0.1


class MockGatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MOCK_GATEWAY_")

    host: str = "127.0.0.1"
    port: int = 8090
    seed: int = 42
    success_rate: float = Field(0.7, ge=0.0, le=1.0)
    latency_ms: int = Field(0, ge=0)
    hang_s: float = Field(3600.0, ge=0.0)
    log_level: str = "warning"


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: StrictStr
    exp_month: StrictInt
    exp_year: StrictInt
    cvc: StrictStr


class ChargeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: StrictStr = Field(min_length=1)
    amount: StrictInt = Field(gt=0)
    currency: StrictStr = Field(pattern=r"^[A-Za-z]{3}$")
    idempotency_key: StrictStr = Field(min_length=1, max_length=255)
    description: StrictStr | None = Field(None, max_length=1000)


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    charge_id: StrictStr = Field(min_length=1)
    amount: StrictInt = Field(gt=0)
    idempotency_key: StrictStr = Field(min_length=1, max_length=255)


def _error(status_code: int, code: str, message: str, param: str | None = None,
           error_type: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse(ProviderError(status_code, code, message, param, error_type).as_json(), status_code)


def _validation_error(exc: RequestValidationError) -> JSONResponse:
    # Built from location and message only: pydantic's "input" would echo the card number back.
    first = exc.errors()[0]
    if first.get("type") == "json_invalid":
        return _error(400, "parameter_invalid", "request body is not valid JSON")
    param = ".".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")) or None
    message = f"{param}: {first.get('msg')}" if param else str(first.get("msg"))
    return _error(400, "parameter_invalid", message, param)


async def _wait_for_disconnect(request: Request, limit_s: float) -> None:
    """Hold the answer back until the client gives up (or `limit_s` passes), like a provider that stalls."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        if await request.is_disconnected():
            return
        await asyncio.sleep(_DISCONNECT_POLL_S)


def create_app(settings: MockGatewaySettings | None = None) -> FastAPI:
    settings = settings or MockGatewaySettings()
    ledger = Ledger(seed=settings.seed, success_rate=settings.success_rate, latency_s=settings.latency_ms / 1000)
    app = FastAPI(title="Mock payment gateway", docs_url=None, redoc_url=None)
    app.state.ledger = ledger

    @app.exception_handler(RequestValidationError)
    async def render_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_error(exc)

    @app.exception_handler(ProviderError)
    async def render_provider_error(_: Request, exc: ProviderError) -> JSONResponse:
        return JSONResponse(exc.as_json(), exc.status_code)

    @app.get("/health")
    async def read_health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/tokens")
    async def create_token(body: TokenRequest) -> Any:
        # The provider's own clock: a real provider does not know about our simulated test clocks.
        today = datetime.now(UTC).date()
        try:
            details = validate_card(body.number, body.exp_month, body.exp_year, body.cvc, today)
        except CardValidationError as exc:
            return _error(400, "invalid_card", exc.message, exc.field, "card_error")
        token = ledger.add_card(normalize_card_number(body.number), details)
        return {
            "token": token,
            "brand": details.brand.value,
            "last4": details.last4,
            "exp_month": details.exp_month,
            "exp_year": details.exp_year,
        }

    @app.post("/v1/charges")
    async def create_charge(body: ChargeRequest, request: Request) -> Any:
        charge, created = await ledger.create_charge(
            body.token, body.amount, body.currency.upper(), body.idempotency_key, body.description
        )
        # Only the first attempt stalls; a replay of the key answers at once, as after a real network failure.
        if created and charge.outcome.hangs:
            await _wait_for_disconnect(request, settings.hang_s)
        return charge.as_json()

    @app.get("/v1/charges")
    async def read_charge_by_key(idempotency_key: Annotated[str, Query(min_length=1)]) -> Any:
        charge = ledger.charge_by_key(idempotency_key)
        if charge is None:
            return _error(404, "resource_missing", "no charge with this idempotency_key", "idempotency_key")
        return charge.as_json()

    @app.get("/v1/charges/{charge_id}")
    async def read_charge(charge_id: str) -> Any:
        charge = ledger.charges.get(charge_id)
        if charge is None:
            return _error(404, "resource_missing", "no such charge", "charge_id")
        return charge.as_json()

    @app.get("/v1/refunds")
    async def read_refund_by_key(idempotency_key: Annotated[str, Query(min_length=1)]) -> Any:
        refund_id = ledger.refund_ids_by_key.get(idempotency_key)
        if refund_id is None:
            return _error(404, "resource_missing", "no refund with this idempotency_key", "idempotency_key")
        return ledger.refunds[refund_id].as_json()

    @app.post("/v1/refunds")
    async def create_refund(body: RefundRequest) -> Any:
        refund = await ledger.create_refund(body.charge_id, body.amount, body.idempotency_key)
        return refund.as_json()

    @app.get("/_stats", include_in_schema=False)
    async def read_stats() -> dict[str, int]:
        return ledger.stats()

    @app.post("/_reset", include_in_schema=False)
    async def reset_state() -> dict[str, str]:
        ledger.reset()
        return {"status": "reset"}

    return app


app = create_app()
