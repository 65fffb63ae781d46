"""The mock card provider as a real process, driven through HttpMockGateway: test cards, idempotency, refunds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from app.adapters.gateway import CardRejected, GatewayUnavailable, HttpMockGateway
from tests.gateway_process import MockGatewayProcesses, find_free_port

SUCCESS_CARD = "4242424242424242"
HARD_DECLINE_CARD = "4000000000000002"
INSUFFICIENT_FUNDS_CARD = "4000000000009995"
PROCESSING_ERROR_CARD = "4000000000000119"
EXPIRED_CARD = "4000000000000069"
TIMEOUT_CARD = "4000000000000259"
FUNDS_ARRIVE_LATER_CARD = "4000000000004442"
RANDOM_MODE_CARD = "5555555555554444"

Stats = Callable[[], dict[str, int]]


async def token_for(gateway: HttpMockGateway, number: str) -> str:
    card = await gateway.tokenize(number, 12, datetime.now(UTC).year + 3, "123")
    return card.token


async def random_mode_outcomes(gateway: HttpMockGateway, keys: list[str]) -> dict[str, tuple[str, str | None]]:
    token = await token_for(gateway, RANDOM_MODE_CARD)
    outcomes = {}
    for key in keys:
        result = await gateway.charge(token, 1000, "USD", key, None)
        outcomes[key] = (result.status, result.failure_code)
    return outcomes


class TestTokens:
    async def test_tokenizing_returns_brand_last4_and_a_token_but_not_the_number(
        self, gateway: HttpMockGateway
    ) -> None:
        exp_year = datetime.now(UTC).year + 3
        card = await gateway.tokenize("4242 4242 4242 4242", 12, exp_year, "123")
        assert card.token.startswith("tok_") and SUCCESS_CARD not in card.token
        assert (card.brand, card.last4, card.exp_month, card.exp_year) == ("visa", "4242", 12, exp_year)

    async def test_card_failing_luhn_is_rejected_with_a_clear_message(self, gateway: HttpMockGateway) -> None:
        with pytest.raises(CardRejected) as caught:
            await gateway.tokenize("1234567890123456", 12, datetime.now(UTC).year + 3, "123")
        assert caught.value.message == "card_number fails the Luhn check"
        assert caught.value.param == "card_number"

    async def test_malformed_input_gets_a_400_json_error_that_does_not_echo_the_card(
        self, mock_gateway_url: str
    ) -> None:
        body = {"number": SUCCESS_CARD, "exp_month": "soon", "exp_year": 2030, "cvc": "123"}
        response = httpx.post(f"{mock_gateway_url}/v1/tokens", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "exp_month"
        assert SUCCESS_CARD not in response.text


class TestTestCards:
    async def test_success_card_is_charged(self, gateway: HttpMockGateway, gateway_stats: Stats) -> None:
        result = await gateway.charge(await token_for(gateway, SUCCESS_CARD), 2500, "EUR", "k-success", "inv 1")
        assert result.status == "succeeded"
        assert result.gateway_charge_id is not None and result.gateway_charge_id.startswith("ch_")
        assert (result.amount, result.currency, result.failure_code, result.decline_type) == (2500, "EUR", None, None)
        assert gateway_stats()["charges_succeeded"] == 1

    @pytest.mark.parametrize(
        ("number", "failure_code", "decline_type"),
        [
            (HARD_DECLINE_CARD, "card_declined", "hard"),
            (INSUFFICIENT_FUNDS_CARD, "insufficient_funds", "soft"),
            (PROCESSING_ERROR_CARD, "processing_error", "soft"),
            (EXPIRED_CARD, "expired_card", "hard"),
        ],
    )
    async def test_decline_cards_fail_with_their_code_and_decline_type(
        self, gateway: HttpMockGateway, number: str, failure_code: str, decline_type: str
    ) -> None:
        result = await gateway.charge(await token_for(gateway, number), 1000, "USD", f"k-{number}", None)
        assert (result.status, result.failure_code, result.decline_type) == ("failed", failure_code, decline_type)

    async def test_funds_later_card_fails_its_first_charge_only(
        self, gateway: HttpMockGateway, gateway_stats: Stats
    ) -> None:
        token = await token_for(gateway, FUNDS_ARRIVE_LATER_CARD)
        first = await gateway.charge(token, 1000, "USD", "k-later-1", None)
        replay = await gateway.charge(token, 1000, "USD", "k-later-1", None)
        retry = await gateway.charge(token, 1000, "USD", "k-later-2", None)
        another_token = await token_for(gateway, FUNDS_ARRIVE_LATER_CARD)
        other_first = await gateway.charge(another_token, 1000, "USD", "k-later-3", None)

        assert (first.status, first.failure_code, first.decline_type) == ("failed", "insufficient_funds", "soft")
        assert (replay.status, replay.gateway_charge_id) == ("failed", first.gateway_charge_id)  # not a new try
        assert retry.status == "succeeded"
        assert other_first.status == "failed"  # each token has its own first charge
        assert (gateway_stats()["charges"], gateway_stats()["charges_succeeded"]) == (3, 1)

    async def test_timeout_card_is_unknown_to_the_client_but_reconciles_to_one_succeeded_charge(
        self, gateway: HttpMockGateway, mock_gateway_url: str, gateway_stats: Stats
    ) -> None:
        token = await token_for(gateway, TIMEOUT_CARD)
        async with HttpMockGateway(mock_gateway_url, timeout_s=0.5) as impatient:
            result = await impatient.charge(token, 1000, "USD", "k-timeout", None)
        assert result.status == "unknown"

        reconciled = await gateway.retrieve("k-timeout")
        assert reconciled is not None and reconciled.status == "succeeded"
        assert gateway_stats()["charges"] == 1

        replay = await gateway.charge(token, 1000, "USD", "k-timeout", None)
        assert (replay.status, replay.gateway_charge_id) == ("succeeded", reconciled.gateway_charge_id)
        assert gateway_stats()["charges"] == 1

    async def test_retrieving_a_key_never_charged_returns_none(self, gateway: HttpMockGateway) -> None:
        assert await gateway.retrieve("k-never-used") is None


class TestIdempotency:
    async def test_replaying_a_key_returns_the_same_charge_without_charging_again(
        self, gateway: HttpMockGateway, gateway_stats: Stats
    ) -> None:
        token = await token_for(gateway, SUCCESS_CARD)
        first = await gateway.charge(token, 1000, "USD", "k-replay", None)
        second = await gateway.charge(token, 1000, "USD", "k-replay", None)
        assert second == first
        stats = gateway_stats()
        assert (stats["charges"], stats["charge_calls"]) == (1, 2)

    async def test_twenty_concurrent_charges_with_one_key_create_one_charge(
        self, gateway: HttpMockGateway, gateway_stats: Stats
    ) -> None:
        token = await token_for(gateway, SUCCESS_CARD)
        results = await asyncio.gather(*(gateway.charge(token, 1000, "USD", "k-race", None) for _ in range(20)))
        assert {(r.status, r.gateway_charge_id) for r in results} == {("succeeded", results[0].gateway_charge_id)}
        stats = gateway_stats()
        assert (stats["charges"], stats["charge_calls"]) == (1, 20)

    async def test_reusing_a_key_for_another_amount_is_unknown_and_charges_nothing_new(
        self, gateway: HttpMockGateway, gateway_stats: Stats
    ) -> None:
        token = await token_for(gateway, SUCCESS_CARD)
        await gateway.charge(token, 1000, "USD", "k-reused", None)
        assert (await gateway.charge(token, 9999, "USD", "k-reused", None)).status == "unknown"
        assert gateway_stats()["charges"] == 1


class TestRandomMode:
    KEYS = [f"k-seeded-{i}" for i in range(20)]

    async def test_other_cards_mix_successes_and_soft_insufficient_funds(self, gateway: HttpMockGateway) -> None:
        outcomes = set((await random_mode_outcomes(gateway, self.KEYS)).values())
        assert outcomes == {("succeeded", None), ("failed", "insufficient_funds")}

    async def test_same_seed_gives_the_same_outcomes_in_a_fresh_process_in_any_order(
        self, gateway: HttpMockGateway, mock_gateway_processes: MockGatewayProcesses
    ) -> None:
        first_run = await random_mode_outcomes(gateway, self.KEYS)
        fresh_url = mock_gateway_processes.start(MOCK_GATEWAY_SEED="42")
        async with HttpMockGateway(fresh_url, timeout_s=5.0) as fresh:
            second_run = await random_mode_outcomes(fresh, list(reversed(self.KEYS)))
        assert second_run == first_run

    async def test_another_seed_gives_other_outcomes(
        self, gateway: HttpMockGateway, mock_gateway_processes: MockGatewayProcesses
    ) -> None:
        seed_42 = await random_mode_outcomes(gateway, self.KEYS)
        other_url = mock_gateway_processes.start(MOCK_GATEWAY_SEED="7")
        async with HttpMockGateway(other_url, timeout_s=5.0) as other:
            seed_7 = await random_mode_outcomes(other, self.KEYS)
        assert seed_7 != seed_42


class TestRefunds:
    async def test_refunds_are_refused_beyond_the_captured_amount(
        self, gateway: HttpMockGateway, gateway_stats: Stats
    ) -> None:
        charge = await gateway.charge(await token_for(gateway, SUCCESS_CARD), 1000, "USD", "k-refundable", None)
        assert charge.gateway_charge_id is not None
        charge_id = charge.gateway_charge_id

        too_much = await gateway.refund(charge_id, 1001, "r-too-much")
        assert (too_much.status, too_much.failure_code) == ("failed", "amount_too_large")
        assert (await gateway.refund(charge_id, 600, "r-first")).status == "succeeded"
        assert (await gateway.refund(charge_id, 500, "r-beyond-rest")).status == "failed"
        rest = await gateway.refund(charge_id, 400, "r-rest")
        assert (rest.status, rest.amount) == ("succeeded", 400)
        assert gateway_stats()["refunds"] == 2

    async def test_replaying_a_refund_key_refunds_once(self, gateway: HttpMockGateway, gateway_stats: Stats) -> None:
        charge = await gateway.charge(await token_for(gateway, SUCCESS_CARD), 1000, "USD", "k-refund-once", None)
        assert charge.gateway_charge_id is not None
        first = await gateway.refund(charge.gateway_charge_id, 300, "r-once")
        second = await gateway.refund(charge.gateway_charge_id, 300, "r-once")
        assert second.gateway_refund_id == first.gateway_refund_id
        assert gateway_stats()["refunds"] == 1

    async def test_a_refund_is_found_by_its_key_and_a_key_never_used_finds_none(self, gateway: HttpMockGateway) -> None:
        charge = await gateway.charge(await token_for(gateway, SUCCESS_CARD), 1000, "USD", "k-refund-found", None)
        assert charge.gateway_charge_id is not None
        made = await gateway.refund(charge.gateway_charge_id, 250, "r-found")

        found = await gateway.retrieve_refund("r-found")

        assert found is not None and (found.status, found.gateway_refund_id, found.amount) == (
            "succeeded", made.gateway_refund_id, 250)
        assert await gateway.retrieve_refund("r-never-sent") is None

    async def test_a_declined_charge_cannot_be_refunded(self, gateway: HttpMockGateway) -> None:
        charge = await gateway.charge(await token_for(gateway, HARD_DECLINE_CARD), 1000, "USD", "k-declined", None)
        assert charge.gateway_charge_id is not None
        refund = await gateway.refund(charge.gateway_charge_id, 100, "r-declined")
        assert (refund.status, refund.failure_code) == ("failed", "charge_not_refundable")


class TestBadInput:
    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"token": "tok_x", "amount": 10.5, "currency": "USD", "idempotency_key": "k"}, "amount"),
            ({"token": "tok_x", "amount": 0, "currency": "USD", "idempotency_key": "k"}, "amount"),
            ({"token": "tok_x", "amount": 100, "currency": "US", "idempotency_key": "k"}, "currency"),
            ({"token": "tok_x", "amount": 100, "currency": "USD"}, "idempotency_key"),
        ],
    )
    async def test_charge_with_bad_fields_gets_a_400_naming_the_field(
        self, mock_gateway_url: str, body: dict[str, object], param: str
    ) -> None:
        response = httpx.post(f"{mock_gateway_url}/v1/charges", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["param"] == param

    async def test_body_that_is_not_json_gets_a_400(self, mock_gateway_url: str) -> None:
        response = httpx.post(f"{mock_gateway_url}/v1/charges", content=b"{not json",
                              headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert response.json()["error"]["message"] == "request body is not valid JSON"


class TestUnreachableProvider:
    async def test_charge_against_a_closed_port_is_unknown_not_raised(self) -> None:
        async with HttpMockGateway(f"http://127.0.0.1:{find_free_port()}", timeout_s=0.5) as nowhere:
            assert (await nowhere.charge("tok_x", 1000, "USD", "k-nowhere", None)).status == "unknown"

    async def test_retrieve_against_a_closed_port_raises_rather_than_claiming_no_charge(self) -> None:
        async with HttpMockGateway(f"http://127.0.0.1:{find_free_port()}", timeout_s=0.5) as nowhere:
            with pytest.raises(GatewayUnavailable):
                await nowhere.retrieve("k-nowhere")
            with pytest.raises(GatewayUnavailable):
                await nowhere.retrieve_refund("r-nowhere")
