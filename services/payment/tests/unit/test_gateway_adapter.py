"""HttpMockGateway's reading of provider answers, from a local aiohttp server standing in for the provider:
doubt becomes "unknown", never a raise."""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import RawTestServer

from app.adapters.gateway import (
    CardRejected,
    ChargeResult,
    GatewayUnavailable,
    HttpMockGateway,
    PaymentGateway,
    _connection_broke,
)

# Ample for an answer over 127.0.0.1; also how long the tests whose provider never answers take.
TIMEOUT_S = 0.5
SUCCEEDED = {"id": "ch_1", "status": "succeeded", "amount": 1000, "currency": "USD"}

Handler = Callable[[web.BaseRequest], web.StreamResponse | Awaitable[web.StreamResponse]]
Answering = Callable[..., Awaitable[HttpMockGateway]]


async def answer(handler: Handler, request: web.BaseRequest) -> web.StreamResponse:
    response = handler(request)
    return await response if inspect.isawaitable(response) else response


@pytest.fixture
async def answering() -> AsyncIterator[Answering]:
    """`await answering(handler, **options)`: an adapter on a provider at 127.0.0.1 that hands every request
    to `handler`. Adapters and servers are closed after the test, adapters first."""
    async with AsyncExitStack() as stack:

        async def start(handler: Handler, **options: Any) -> HttpMockGateway:
            server = await stack.enter_async_context(RawTestServer(lambda request: answer(handler, request)))
            gateway = HttpMockGateway(str(server.make_url("/")), **{"timeout_s": TIMEOUT_S, **options})
            return await stack.enter_async_context(gateway)

        yield start


@pytest.fixture
def refusing_url() -> Iterator[str]:
    """A port that is bound but not listening: connections to it are refused, and nothing else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


# --- how the provider can misbehave; the server cancels a handler whose client has hung up -------------


def closes_without_answering(request: web.BaseRequest) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


def resets_the_connection(request: web.BaseRequest) -> web.StreamResponse:
    assert request.transport is not None
    # Linger on, zero seconds: closing sends a TCP reset instead of a clean close.
    linger = struct.pack("ii", 1, 0)
    request.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    request.transport.abort()
    return web.Response()


def answers_not_in_http(request: web.BaseRequest) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.write(b"SMTP ready\r\n\r\n")
    request.transport.close()
    return web.Response()


async def cuts_the_answer_short(request: web.BaseRequest) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "100"})
    await response.prepare(request)
    await response.write(b'{"id": "ch_')
    assert request.transport is not None
    request.transport.close()
    return response


async def never_answers(request: web.BaseRequest) -> web.StreamResponse:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Received:
    method: str
    path_qs: str
    content_type: str
    body: bytes


def counting(handler: Handler) -> tuple[Handler, list[Received]]:
    """The handler, and the list of requests it was sent."""
    sent: list[Received] = []

    async def recorded(request: web.BaseRequest) -> web.StreamResponse:
        sent.append(Received(request.method, request.path_qs, request.content_type, await request.read()))
        return await answer(handler, request)

    return recorded, sent


def error(status_code: int, code: str, message: str = "refused", param: str | None = None) -> Handler:
    body = {"error": {"type": "invalid_request_error", "code": code, "message": message, "param": param}}
    return lambda request: web.json_response(body, status=status_code)


async def charge(gateway: HttpMockGateway) -> ChargeResult:
    return await gateway.charge("tok_1", 1000, "USD", "key-1", "invoice 1")


def test_http_mock_gateway_implements_the_payment_gateway_port() -> None:
    # Built outside any event loop, as create_app may: the aiohttp session is only made on first use.
    assert isinstance(HttpMockGateway("http://provider.test"), PaymentGateway)


class TestChargeOutcomeUnknown:
    @pytest.mark.parametrize("handler", [never_answers, closes_without_answering, resets_the_connection,
                                         answers_not_in_http, cuts_the_answer_short])
    async def test_transport_failure_is_unknown(self, answering: Answering, handler: Handler) -> None:
        result = await charge(await answering(handler))
        assert result.status == "unknown"
        assert result.gateway_charge_id is None

    async def test_unreachable_provider_is_unknown(self, refusing_url: str) -> None:
        async with HttpMockGateway(refusing_url, timeout_s=TIMEOUT_S) as gateway:
            result = await charge(gateway)
        assert (result.status, result.gateway_charge_id) == ("unknown", None)

    @pytest.mark.parametrize("status_code", [500, 502, 503, 504])
    async def test_server_error_is_unknown(self, answering: Answering, status_code: int) -> None:
        gateway = await answering(lambda request: web.Response(status=status_code, text="oops"))
        assert (await charge(gateway)).status == "unknown"

    async def test_unreadable_body_is_unknown(self, answering: Answering) -> None:
        gateway = await answering(lambda request: web.Response(text="<html>proxy</html>"))
        assert (await charge(gateway)).status == "unknown"

    async def test_unexpected_charge_status_is_unknown(self, answering: Answering) -> None:
        body = {"id": "ch_1", "status": "pending", "amount": 1000, "currency": "USD"}
        assert (await charge(await answering(lambda request: web.json_response(body)))).status == "unknown"

    async def test_idempotency_conflict_is_unknown_so_the_caller_reconciles(self, answering: Answering) -> None:
        assert (await charge(await answering(error(409, "idempotency_key_in_use")))).status == "unknown"


class TestBrokenConnections:
    async def test_a_charge_whose_connection_broke_is_sent_again_with_the_same_key(
        self, answering: Answering
    ) -> None:
        keys: list[str] = []

        async def closed_once(request: web.BaseRequest) -> web.StreamResponse:
            keys.append((await request.json())["idempotency_key"])
            if len(keys) == 1:  # a pooled keep-alive connection the provider had just closed
                return closes_without_answering(request)
            return web.json_response(SUCCEEDED)

        result = await charge(await answering(closed_once))
        assert (result.status, result.gateway_charge_id) == ("succeeded", "ch_1")
        assert keys == ["key-1", "key-1"]

    async def test_a_connection_that_keeps_breaking_leaves_the_outcome_unknown_after_the_attempts(
        self, answering: Answering
    ) -> None:
        handler, sent = counting(resets_the_connection)
        gateway = await answering(handler, attempts=2)
        assert (await gateway.charge("tok_1", 1000, "USD", "key-1")).status == "unknown"
        assert len(sent) == 2

    async def test_a_timeout_is_not_sent_again(self, answering: Answering) -> None:
        handler, sent = counting(never_answers)
        assert (await charge(await answering(handler))).status == "unknown"
        assert len(sent) == 1

    @pytest.mark.parametrize("exc", [
        aiohttp.ServerDisconnectedError(),
        aiohttp.ClientOSError(104, "Connection reset by peer"),
        aiohttp.ClientOSError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        aiohttp.ClientPayloadError("Response payload is not completed"),
    ], ids=type)
    def test_what_counts_as_a_broken_connection(self, exc: BaseException) -> None:
        assert _connection_broke(exc)

    # aiohttp's ServerTimeoutError (and its subclasses) are ClientConnectionErrors too: still not resent.
    @pytest.mark.parametrize("exc", [
        asyncio.TimeoutError(),
        aiohttp.ServerTimeoutError("Timeout on reading data from socket"),
        aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
        aiohttp.ConnectionTimeoutError("Connection timeout"),
    ], ids=type)
    def test_a_timeout_never_counts_as_a_broken_connection(self, exc: BaseException) -> None:
        assert not _connection_broke(exc)

    async def test_calls_share_one_keep_alive_connection(self, answering: Answering) -> None:
        peers: list[tuple[str, int]] = []

        def handler(request: web.BaseRequest) -> web.StreamResponse:
            assert request.transport is not None
            peers.append(request.transport.get_extra_info("peername"))
            return web.json_response(SUCCEEDED)

        gateway = await answering(handler)
        await charge(gateway)
        await charge(gateway)
        assert len(peers) == 2 and peers[0] == peers[1]


class TestChargeOutcomeKnown:
    async def test_succeeded_charge_carries_the_provider_id(self, answering: Answering) -> None:
        body = {**SUCCEEDED, "decline_type": None}
        result = await charge(await answering(lambda request: web.json_response(body)))
        assert result == ChargeResult("succeeded", gateway_charge_id="ch_1", amount=1000, currency="USD")

    async def test_refused_request_fails_hard_with_the_provider_code(self, answering: Answering) -> None:
        result = await charge(await answering(error(400, "resource_missing", "no such token", "token")))
        assert (result.status, result.failure_code, result.decline_type) == ("failed", "resource_missing", "hard")

    async def test_rate_limited_request_fails_soft(self, answering: Answering) -> None:
        result = await charge(await answering(error(429, "rate_limited", "slow down")))
        assert (result.status, result.failure_code, result.decline_type) == ("failed", "rate_limited", "soft")

    async def test_decline_without_a_type_is_taken_as_hard(self, answering: Answering) -> None:
        body = {"id": "ch_1", "status": "failed", "failure_code": "do_not_honor"}
        result = await charge(await answering(lambda request: web.json_response(body)))
        assert (result.status, result.decline_type) == ("failed", "hard")

    async def test_request_carries_amount_currency_and_key(self, answering: Answering) -> None:
        handler, seen = counting(lambda request: web.json_response({"id": "ch_1", "status": "succeeded"}))
        await charge(await answering(handler))
        assert (seen[0].method, seen[0].path_qs, seen[0].content_type) == ("POST", "/v1/charges", "application/json")
        sent = json.loads(seen[0].body)
        assert (sent["amount"], sent["currency"], sent["idempotency_key"]) == (1000, "USD", "key-1")


class TestRefund:
    async def test_server_error_is_unknown(self, answering: Answering) -> None:
        gateway = await answering(lambda request: web.Response(status=502))
        assert (await gateway.refund("ch_1", 100, "r-1")).status == "unknown"

    async def test_timeout_is_unknown(self, answering: Answering) -> None:
        assert (await (await answering(never_answers)).refund("ch_1", 100, "r-1")).status == "unknown"

    async def test_refusal_fails_with_the_provider_code(self, answering: Answering) -> None:
        result = await (await answering(error(400, "amount_too_large"))).refund("ch_1", 100, "r-1")
        assert (result.status, result.failure_code) == ("failed", "amount_too_large")

    async def test_rate_limited_is_unknown_so_it_is_sent_again_not_given_up(self, answering: Answering) -> None:
        result = await (await answering(error(429, "rate_limited", "slow down"))).refund("ch_1", 100, "r-1")
        assert result.status == "unknown"


class TestRetrieve:
    async def test_provider_not_found_means_no_charge(self, answering: Answering) -> None:
        handler, seen = counting(error(404, "resource_missing"))
        assert await (await answering(handler)).retrieve("key-1") is None
        assert (seen[0].method, seen[0].path_qs) == ("GET", "/v1/charges?idempotency_key=key-1")

    async def test_a_404_not_from_the_provider_is_not_taken_as_no_charge(self, answering: Answering) -> None:
        gateway = await answering(lambda request: web.Response(status=404, text="Not Found"))
        with pytest.raises(GatewayUnavailable):
            await gateway.retrieve("key-1")

    @pytest.mark.parametrize("handler", [never_answers, lambda request: web.Response(status=503)])
    async def test_provider_trouble_raises_rather_than_claiming_no_charge(
        self, answering: Answering, handler: Handler
    ) -> None:
        gateway = await answering(handler)
        with pytest.raises(GatewayUnavailable):
            await gateway.retrieve("key-1")


class TestTokenize:
    async def test_refused_card_raises_with_the_provider_message(self, answering: Answering) -> None:
        gateway = await answering(error(400, "invalid_card", "card_number fails the Luhn check", "card_number"))
        with pytest.raises(CardRejected) as caught:
            await gateway.tokenize("1234567890123456", 12, 2030, "123")
        assert (caught.value.message, caught.value.param) == ("card_number fails the Luhn check", "card_number")

    async def test_unreachable_provider_raises_without_echoing_the_card(self, refusing_url: str) -> None:
        async with HttpMockGateway(refusing_url, timeout_s=TIMEOUT_S) as gateway:
            with pytest.raises(GatewayUnavailable) as caught:
                await gateway.tokenize("4242424242424242", 12, 2030, "123")
        assert "4242424242424242" not in str(caught.value)
