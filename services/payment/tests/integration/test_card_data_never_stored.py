"""Card numbers go to the gateway and nowhere else: not into the database (dumped whole), not into the logs."""

from __future__ import annotations

import logging
import subprocess

from tests.conftest import (
    AMEX_CARD,
    HARD_DECLINE_CARD,
    SUCCESS_CARD,
    TIMEOUT_CARD,
    card_body,
    idem,
)

# Registered below, in the spellings a client might send.
KNOWN_CARDS = {
    SUCCESS_CARD: "4242 4242 4242 4242",
    HARD_DECLINE_CARD: HARD_DECLINE_CARD,
    "5555555555554444": "5555-5555-5555-4444",
    AMEX_CARD: AMEX_CARD,
    "6011111111111117": "6011 1111 1111 1117",
}
REFUSED_CARDS = {"4242424242424241": "luhn", "4111111111111111": "expired"}


def spellings(number: str) -> set[str]:
    return {number, " ".join(number[i:i + 4] for i in range(0, len(number), 4)), "-".join(number[i:i + 4] for i in range(0, len(number), 4))}


async def test_no_card_number_reaches_the_database_dump_or_the_logs(
    client, customer, admin_headers, service_env, caplog
):
    caplog.set_level(logging.DEBUG)
    customer_id, headers = customer
    url = f"/api/customers/{customer_id}/payment_methods"
    for number, spelled in KNOWN_CARDS.items():
        cvc = "7391" if number == AMEX_CARD else "739"
        response = await client.post(url, json=card_body(spelled, cvc=cvc), headers=headers)
        assert response.status_code == 201, response.text
        assert number not in response.text
    refused = await client.post(url, json=card_body("4242424242424241"), headers=headers)
    expired = await client.post(url, json=card_body("4111111111111111", years_ahead=-2), headers=headers)
    wrong_type = await client.post(url, json={**card_body(), "cvc": 739}, headers=headers)
    assert refused.status_code == expired.status_code == wrong_type.status_code == 422
    assert "4242424242424241" not in refused.text and "4111111111111111" not in expired.text
    # A charge, so payments, events and idempotency records are in the dump too.
    charged = await client.post(
        "/api/payments", json={"customer_id": str(customer_id), "amount": 100, "currency": "USD"}, headers=idem(headers)
    )
    assert charged.status_code == 201

    dump = subprocess.run(
        ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", service_env.database],
        check=True, capture_output=True, text=True,
    ).stdout
    assert "payment_methods" in dump and "4242" in dump  # the dump holds the table and the last4 it may keep
    logs = caplog.text
    assert "payment_methods" in logs  # the requests were logged, just not their bodies
    for number in [*KNOWN_CARDS, *REFUSED_CARDS, TIMEOUT_CARD]:
        for spelled in spellings(number):
            assert spelled not in dump, f"card number {number} found in the database dump"
            assert spelled not in logs, f"card number {number} found in the logs"
