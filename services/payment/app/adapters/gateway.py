"""The card-provider port (PaymentGateway) and its HTTP adapter for the mock provider.

A charge or refund whose outcome could not be learned is reported as "unknown", never as failed and never
raised, so the caller reconciles by idempotency key instead of charging twice. Card numbers and CVCs are
passed through, never logged or kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

logger = logging.getLogger(__name__)

ChargeStatus = Literal["succeeded", "failed", "unknown"]
RefundStatus = Literal["succeeded", "failed", "unknown"]
DeclineType = Literal["hard", "soft"]


@dataclass(frozen=True, slots=True)
class CardToken:
    """What the provider hands back for a card: a token to charge and the displayable details."""

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True, slots=True)
class ChargeResult:
    status: ChargeStatus
    gateway_charge_id: str | None = None
    failure_code: str | None = None
    decline_type: DeclineType | None = None
    amount: int | None = None
    currency: str | None = None
    # Why, for logs and support; never card data.
    message: str | None = None


@dataclass(frozen=True, slots=True)
class RefundResult:
    status: RefundStatus
    gateway_refund_id: str | None = None
    amount: int | None = None
    failure_code: str | None = None
    message: str | None = None


class CardRejected(Exception):
    """The provider refused to tokenize the card (bad number, expiry or CVC); `message` is safe to show."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


class GatewayUnavailable(Exception):
    """The provider could not be asked or gave no usable answer, on a call that moves no money."""


@runtime_checkable
class PaymentGateway(Protocol):
    async def tokenize(self, number: str, exp_month: int, exp_year: int, cvc: str) -> CardToken:
        """Exchange a card for a token; CardRejected for a bad card, GatewayUnavailable if unreachable."""
        ...

    async def charge(self, token: str, amount: int, currency: str, idempotency_key: str,
                     description: str | None = None) -> ChargeResult:
        """Charge `amount` minor units once per idempotency key; never raises for provider trouble."""
        ...

    async def refund(self, charge_id: str, amount: int, idempotency_key: str) -> RefundResult:
        """Refund part of a charge once per idempotency key; never raises for provider trouble."""
        ...

    async def retrieve(self, idempotency_key: str) -> ChargeResult | None:
        """The charge made under this key, None if there is none; GatewayUnavailable if the provider can't say."""
        ...


@dataclass(frozen=True, slots=True)
class _ErrorBody:
    code: str | None
    message: str
    param: str | None


def _error_body(response: httpx.Response) -> _ErrorBody:
    try:
        error = response.json()["error"]
        return _ErrorBody(error.get("code"), str(error.get("message") or "request refused"), error.get("param"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return _ErrorBody(None, f"HTTP {response.status_code} without a readable error body", None)


def _charge_from_json(data: dict[str, Any]) -> ChargeResult:
    """A ChargeResult from a provider charge object; ValueError if it is not one we understand."""
    status = data["status"]
    charge_id = data["id"]
    if status not in ("succeeded", "failed") or not isinstance(charge_id, str):
        raise ValueError(f"unexpected charge status {status!r}")
    decline_type = data.get("decline_type")
    if status == "failed" and decline_type not in ("hard", "soft"):
        # A decline we cannot classify is treated as final: retrying it blindly risks card-testing flags.
        decline_type = "hard"
    return ChargeResult(
        status=status,
        gateway_charge_id=charge_id,
        failure_code=data.get("failure_code") if status == "failed" else None,
        decline_type=decline_type if status == "failed" else None,
        amount=data.get("amount"),
        currency=data.get("currency"),
        message=data.get("failure_message"),
    )


class HttpMockGateway:
    """PaymentGateway over the mock provider's HTTP API, on one pooled keep-alive HTTP/1.1 transport.

    Requests go straight to the transport: httpx.AsyncClient's per-request machinery (URL merging, default
    headers, cookies, auth, redirects, event hooks and an INFO log line) costs more CPU than the call itself.
    The transport maps connection errors to httpx exceptions as the client does. A call whose connection
    broke before any answer is sent again (up to `attempts` times, same idempotency key).
    """

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        attempts: int = 3,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._attempts = attempts
        self._timeout = httpx.Timeout(timeout_s).as_dict()
        self._transport = transport or httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        )
        self._charges_url = httpx.URL(self._url("/v1/charges"))
        self._refunds_url = httpx.URL(self._url("/v1/refunds"))
        self._tokens_url = httpx.URL(self._url("/v1/tokens"))

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> HttpMockGateway:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    def _url(self, path: str) -> str:
        return f"{self._base_url}{path}"

    async def _send(self, method: str, url: httpx.URL, payload: dict[str, Any] | None = None,
                    params: dict[str, str] | None = None) -> httpx.Response:
        """One request with its body read; raises (httpx.HTTPError for transport trouble) when no answer came."""
        if params is not None:
            url = url.copy_merge_params(params)
        request = httpx.Request(method, url, json=payload, extensions={"timeout": self._timeout})
        async for attempt in AsyncRetrying(
            # The connection broke before an answer came: most often a pooled keep-alive connection the
            # provider closed as we reused it. Resending is safe, since every money call carries its
            # idempotency key; a timeout is not retried here (the provider may still be working on it).
            retry=retry_if_exception_type((httpx.NetworkError, httpx.RemoteProtocolError)),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=0.05, max=0.5),
            reraise=True,
        ):
            with attempt:
                response = await self._transport.handle_async_request(request)
                try:
                    await response.aread()
                finally:
                    await response.aclose()
        response.request = request
        return response

    async def tokenize(self, number: str, exp_month: int, exp_year: int, cvc: str) -> CardToken:
        payload = {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": cvc}
        try:
            response = await self._send("POST", self._tokens_url, payload)
        except httpx.HTTPError as exc:
            # Only the exception type: nothing of the request (which holds the card) goes into the message.
            raise GatewayUnavailable(f"tokenize failed: {type(exc).__name__}") from None
        if 400 <= response.status_code < 500:
            error = _error_body(response)
            raise CardRejected(error.message, error.param, error.code)
        if response.status_code != 200:
            raise GatewayUnavailable(f"tokenize failed: HTTP {response.status_code}")
        try:
            data = response.json()
            return CardToken(
                token=str(data["token"]),
                brand=str(data["brand"]),
                last4=str(data["last4"]),
                exp_month=int(data["exp_month"]),
                exp_year=int(data["exp_year"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayUnavailable(f"tokenize answer unreadable: {type(exc).__name__}") from None

    async def charge(self, token: str, amount: int, currency: str, idempotency_key: str,
                     description: str | None = None) -> ChargeResult:
        payload = {
            "token": token,
            "amount": amount,
            "currency": currency,
            "idempotency_key": idempotency_key,
            "description": description,
        }
        try:
            response = await self._send("POST", self._charges_url, payload)
        except Exception as exc:  # noqa: BLE001 - once a request may have left, any error leaves the outcome open
            return self._unknown_charge(idempotency_key, f"no answer: {type(exc).__name__}")
        status_code = response.status_code
        if status_code >= 500 or status_code == 409:
            # 5xx: the provider may have charged before failing. 409: the key already has a charge; ask for it.
            return self._unknown_charge(idempotency_key, f"HTTP {status_code}: {_error_body(response).message}")
        if status_code == 429:
            return ChargeResult("failed", failure_code="rate_limited", decline_type="soft",
                                message=_error_body(response).message)
        if 400 <= status_code < 500:
            error = _error_body(response)
            return ChargeResult("failed", failure_code=error.code or "invalid_request", decline_type="hard",
                                message=error.message)
        if status_code != 200:
            return self._unknown_charge(idempotency_key, f"unexpected HTTP {status_code}")
        try:
            return _charge_from_json(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            return self._unknown_charge(idempotency_key, f"unreadable answer: {type(exc).__name__}")

    def _unknown_charge(self, idempotency_key: str, reason: str) -> ChargeResult:
        logger.warning("charge outcome unknown; reconcile by idempotency key",
                       extra={"idempotency_key": idempotency_key, "reason": reason})
        return ChargeResult("unknown", message=reason)

    async def refund(self, charge_id: str, amount: int, idempotency_key: str) -> RefundResult:
        payload = {"charge_id": charge_id, "amount": amount, "idempotency_key": idempotency_key}
        try:
            response = await self._send("POST", self._refunds_url, payload)
        except Exception as exc:  # noqa: BLE001 - same reasoning as charge()
            return self._unknown_refund(idempotency_key, f"no answer: {type(exc).__name__}")
        status_code = response.status_code
        if status_code >= 500 or status_code == 409:
            return self._unknown_refund(idempotency_key, f"HTTP {status_code}: {_error_body(response).message}")
        if 400 <= status_code < 500:
            error = _error_body(response)
            return RefundResult("failed", failure_code=error.code or "invalid_request", message=error.message)
        if status_code != 200:
            return self._unknown_refund(idempotency_key, f"unexpected HTTP {status_code}")
        try:
            data = response.json()
            if data["status"] != "succeeded":
                raise ValueError(f"unexpected refund status {data['status']!r}")
            return RefundResult("succeeded", gateway_refund_id=str(data["id"]), amount=int(data["amount"]))
        except (ValueError, KeyError, TypeError) as exc:
            return self._unknown_refund(idempotency_key, f"unreadable answer: {type(exc).__name__}")

    def _unknown_refund(self, idempotency_key: str, reason: str) -> RefundResult:
        logger.warning("refund outcome unknown; retry with the same idempotency key",
                       extra={"idempotency_key": idempotency_key, "reason": reason})
        return RefundResult("unknown", message=reason)

    async def retrieve(self, idempotency_key: str) -> ChargeResult | None:
        # Raises rather than returning None on trouble: "could not ask" must never read as "never charged".
        try:
            response = await self._send("GET", self._charges_url, params={"idempotency_key": idempotency_key})
        except httpx.HTTPError as exc:
            raise GatewayUnavailable(f"retrieve failed: {type(exc).__name__}") from exc
        if response.status_code == 404:
            # Only the provider's own "no such charge" counts; a 404 from a wrong URL or proxy proves nothing.
            if _error_body(response).code == "resource_missing":
                return None
            raise GatewayUnavailable("retrieve failed: HTTP 404 without the provider's resource_missing code")
        if response.status_code != 200:
            raise GatewayUnavailable(f"retrieve failed: HTTP {response.status_code}")
        try:
            return _charge_from_json(response.json())
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayUnavailable(f"retrieve answer unreadable: {type(exc).__name__}") from exc
