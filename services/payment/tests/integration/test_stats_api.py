"""Dashboard statistics: payments by status and the amounts collected per day and currency (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import HARD_DECLINE_CARD, idem


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def collected(stats: dict, currency: str, first_day: str, last_day: str) -> int:
    """What was collected in this currency on the days first_day..last_day (ISO dates: they compare as strings)."""
    return sum(
        d["amount"] for d in stats["collected"] if first_day <= d["date"] <= last_day and d["currency"] == currency
    )


async def test_stats_count_outcomes_and_sum_what_was_collected(client, customer, add_card, admin_headers):
    customer_id, headers = customer
    good = await add_card(customer_id, headers)
    bad = await add_card(customer_id, headers, number=HARD_DECLINE_CARD)
    first_day = today()  # the payments are dated this day or, across midnight UTC, the next
    before = (await client.get("/api/payments/stats", params={"days": 7}, headers=admin_headers)).json()
    for method, amount in ((good, 1234), (good, 66), (bad, 5000)):
        body = {"customer_id": str(customer_id), "amount": amount, "currency": "CHF", "payment_method_id": method["id"]}
        assert (await client.post("/api/payments", json=body, headers=idem(headers))).status_code == 201
    after = (await client.get("/api/payments/stats", params={"days": 7}, headers=admin_headers)).json()
    last_day = today()
    assert after["succeeded"] - before["succeeded"] == 2
    assert after["failed"] - before["failed"] == 1
    assert collected(after, "CHF", first_day, last_day) - collected(before, "CHF", first_day, last_day) == 1300
    assert set(after) >= {"succeeded", "failed", "unknown", "pending", "collected"}


async def test_stats_are_for_admins_and_days_are_bounded(client, customer, admin_headers):
    _, headers = customer
    assert (await client.get("/api/payments/stats", headers=headers)).status_code == 403
    assert (await client.get("/api/payments/stats", params={"days": 0}, headers=admin_headers)).status_code == 422
    assert (await client.get("/api/payments/stats", params={"days": 400}, headers=admin_headers)).status_code == 422
