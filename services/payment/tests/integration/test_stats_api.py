"""Dashboard statistics: payments by status and the amounts collected per day and currency (admin only)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.conftest import HARD_DECLINE_CARD, idem


def collected_today(stats: dict, currency: str) -> int:
    today = datetime.now(UTC).date().isoformat()
    return sum(d["amount"] for d in stats["collected"] if d["date"] == today and d["currency"] == currency)


async def test_stats_count_outcomes_and_sum_what_was_collected(client, customer, add_card, admin_headers):
    customer_id, headers = customer
    good = await add_card(customer_id, headers)
    bad = await add_card(customer_id, headers, number=HARD_DECLINE_CARD)
    before = (await client.get("/api/payments/stats", params={"days": 7}, headers=admin_headers)).json()
    for method, amount in ((good, 1234), (good, 66), (bad, 5000)):
        body = {"customer_id": str(customer_id), "amount": amount, "currency": "CHF", "payment_method_id": method["id"]}
        assert (await client.post("/api/payments", json=body, headers=idem(headers))).status_code == 201
    after = (await client.get("/api/payments/stats", params={"days": 7}, headers=admin_headers)).json()
    assert after["succeeded"] - before["succeeded"] == 2
    assert after["failed"] - before["failed"] == 1
    assert collected_today(after, "CHF") - collected_today(before, "CHF") == 1300
    assert set(after) >= {"succeeded", "failed", "unknown", "pending", "collected"}


async def test_stats_are_for_admins_and_days_are_bounded(client, customer, admin_headers):
    _, headers = customer
    assert (await client.get("/api/payments/stats", headers=headers)).status_code == 403
    assert (await client.get("/api/payments/stats", params={"days": 0}, headers=admin_headers)).status_code == 422
    assert (await client.get("/api/payments/stats", params={"days": 400}, headers=admin_headers)).status_code == 422
