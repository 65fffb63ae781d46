"""HttpMockGateway's reading of provider answers, on an in-memory transport: doubt becomes "unknown", never a raise."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from app.adapters.gateway import (
    CardRejected,
    ChargeResult,
    GatewayUnavailable,
    HttpMockGateway,
    PaymentGateway,
)

BASE_URL = "http://provider.test"
Handler = Callable[[httpx.Request], httpx.Response]


def gateway_answering(handler: Handler) -> HttpMockGateway:
    return HttpMockGateway(BASE_URL, timeout_s=1.0, transport=httpx.MockTransport(handler))


def raising(exc_type: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)

    return handler


def counting(handler: Handler) -> tuple[Handler, list[httpx.Request]]:
    """The handler, and the list of requests it was sent."""
    sent: list[httpx.Request] = []

    def recorded(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return handler(request)

    return recorded, sent


def error(status_code: int, code: str, message: str = "refused", param: str | None = None) -> Handler:
    body = {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": param}}
    return lambda request: httpx.Response(status_code, json=body)


async def charge(handler: Handler) -> ChargeResult:
    return await gateway_answering(handler).charge("tok_1", 1000, "USD", "key-1", "invoice 1")


def test_http_mock_gateway_implements_the_payment_gateway_port() -> None:
    assert isinstance(HttpMockGateway(BASE_URL), PaymentGateway)


class TestChargeOutcomeUnknown:
    @pytest.mark.parametrize("exc_type", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                                          httpx.ConnectError, httpx.WriteTimeout])
    async def test_transport_failure_is_unknown(self, exc_type: type[httpx.TransportError]) -> None:
        result = await charge(raising(exc_type))
        assert result.status == "unknown"
        assert result.gateway_charge_id is None

    @pytest.mark.parametrize("status_code", [500, 502, 503, 504])
    async def test_server_error_is_unknown(self, status_code: int) -> None:
        assert (await charge(lambda request: httpx.Response(status_code, text="oops"))).status == "unknown"

    async def test_unreadable_body_is_unknown(self) -> None:
        assert (await charge(lambda request: httpx.Response(200, text="<html>proxy</html>"))).status == "unknown"

    async def test_unexpected_charge_status_is_unknown(self) -> None:
        body = {"id": "ch_1", "status": "pending", "amount": 1000, "currency": "USD"}
        assert (await charge(lambda request: httpx.Response(200, json=body))).status == "unknown"

    async def test_idempotency_conflict_is_unknown_so_the_caller_reconciles(self) -> None:
        assert (await charge(error(409, "idempotency_key_in_use"))).status == "unknown"


class TestBrokenConnections:
    async def test_a_charge_whose_connection_broke_is_sent_again_with_the_same_key(self) -> None:
        keys: list[str] = []
        body = {"id": "ch_1", "status": "succeeded", "amount": 1000, "currency": "USD"}

        def closed_once(request: httpx.Request) -> httpx.Response:
            keys.append(json.loads(request.content)["idempotency_key"])
            if len(keys) == 1:  # a pooled keep-alive connection the provider had just closed
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
            return httpx.Response(200, json=body)

        result = await charge(closed_once)
        assert (result.status, result.gateway_charge_id) == ("succeeded", "ch_1")
        assert keys == ["key-1", "key-1"]

    async def test_a_connection_that_keeps_breaking_leaves_the_outcome_unknown_after_the_attempts(self) -> None:
        handler, sent = counting(raising(httpx.ReadError))
        gateway = HttpMockGateway(BASE_URL, timeout_s=1.0, transport=httpx.MockTransport(handler), attempts=2)
        assert (await gateway.charge("tok_1", 1000, "USD", "key-1")).status == "unknown"
        assert len(sent) == 2

    async def test_a_timeout_is_not_sent_again(self) -> None:
        handler, sent = counting(raising(httpx.ReadTimeout))
        assert (await charge(handler)).status == "unknown"
        assert len(sent) == 1


class TestChargeOutcomeKnown:
    async def test_succeeded_charge_carries_the_provider_id(self) -> None:
        body = {"id": "ch_1", "status": "succeeded", "amount": 1000, "currency": "USD", "decline_type": None}
        result = await charge(lambda request: httpx.Response(200, json=body))
        assert result == ChargeResult("succeeded", gateway_charge_id="ch_1", amount=1000, currency="USD")

    async def test_refused_request_fails_hard_with_the_provider_code(self) -> None:
        result = await charge(error(400, "resource_missing", "no such token", "token"))
        assert (result.status, result.failure_code, result.decline_type) == ("failed", "resource_missing", "hard")

    async def test_decline_without_a_type_is_taken_as_hard(self) -> None:
        body = {"id": "ch_1", "status": "failed", "failure_code": "do_not_honor"}
        result = await charge(lambda request: httpx.Response(200, json=body))
        assert (result.status, result.decline_type) == ("failed", "hard")

    async def test_request_carries_amount_currency_and_key(self) -> None:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json={"id": "ch_1", "status": "succeeded"})

        await charge(handler)
        assert seen[0].url == f"{BASE_URL}/v1/charges"
        assert b'"amount":1000' in seen[0].content and b'"idempotency_key":"key-1"' in seen[0].content


class TestRefund:
    async def test_server_error_is_unknown(self) -> None:
        result = await gateway_answering(lambda request: httpx.Response(502)).refund("ch_1", 100, "r-1")
        assert result.status == "unknown"

    async def test_timeout_is_unknown(self) -> None:
        assert (await gateway_answering(raising(httpx.ReadTimeout)).refund("ch_1", 100, "r-1")).status == "unknown"

    async def test_refusal_fails_with_the_provider_code(self) -> None:
        result = await gateway_answering(error(400, "amount_too_large")).refund("ch_1", 100, "r-1")
        assert (result.status, result.failure_code) == ("failed", "amount_too_large")


class TestRetrieve:
    async def test_provider_not_found_means_no_charge(self) -> None:
        assert await gateway_answering(error(404, "resource_missing")).retrieve("key-1") is None

    async def test_a_404_not_from_the_provider_is_not_taken_as_no_charge(self) -> None:
        with pytest.raises(GatewayUnavailable):
            await gateway_answering(lambda request: httpx.Response(404, text="Not Found")).retrieve("key-1")

    @pytest.mark.parametrize("handler", [raising(httpx.ReadTimeout), lambda request: httpx.Response(503)])
    async def test_provider_trouble_raises_rather_than_claiming_no_charge(self, handler: Handler) -> None:
        with pytest.raises(GatewayUnavailable):
            await gateway_answering(handler).retrieve("key-1")


class TestTokenize:
    async def test_refused_card_raises_with_the_provider_message(self) -> None:
        handler = error(400, "invalid_card", "card_number fails the Luhn check", "card_number")
        with pytest.raises(CardRejected) as caught:
            await gateway_answering(handler).tokenize("1234567890123456", 12, 2030, "123")
        assert (caught.value.message, caught.value.param) == ("card_number fails the Luhn check", "card_number")

    async def test_unreachable_provider_raises_without_echoing_the_card(self) -> None:
        with pytest.raises(GatewayUnavailable) as caught:
            await gateway_answering(raising(httpx.ConnectError)).tokenize("4242424242424242", 12, 2030, "123")
        assert "4242424242424242" not in str(caught.value)
