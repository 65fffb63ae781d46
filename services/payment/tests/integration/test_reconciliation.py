"""A charge whose answer is lost is "unknown", never re-charged, and settled later by asking the gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.db.models import Payment
from app.service_layer.charges import ChargeTarget, insert_payment, new_payment
from billing_shared import clock
from billing_shared.ids import id_made_at, new_id
from billing_shared.testing import EventBus, wait_for
from tests.conftest import TIMEOUT_CARD, events_about, idem


def later(seconds: int) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def unknown_payment(http, customer, add_card) -> dict:
    customer_id, headers = customer
    await add_card(customer_id, headers, number=TIMEOUT_CARD)
    response = await http.post(
        "/api/payments", json={"customer_id": str(customer_id), "amount": 4200, "currency": "EUR"}, headers=idem(headers)
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_timeout_card_is_unknown_then_reconciled_to_succeeded_with_one_charge(
    client, customer, add_card, start_replica, admin_headers, gateway_stats, service_env
):
    _, headers = customer
    before = gateway_stats()
    async with start_replica(payment_gateway_timeout_s=0.3, run_consumer=False, run_relay=False) as (_, impatient):
        payment = await unknown_payment(impatient, customer, add_card)
    assert payment["status"] == "unknown" and payment["gateway_charge_id"] is None

    not_yet = await client.post("/api/payments/reconcile", json={"as_of": later(60)}, headers=admin_headers)
    assert not_yet.status_code == 200
    assert (await client.get(f"/api/payments/{payment['id']}", headers=headers)).json()["status"] == "unknown"

    async with EventBus(service_env.amqp_url) as bus:
        await bus.record("payment.succeeded")
        report = await client.post("/api/payments/reconcile", json={"as_of": later(301)}, headers=admin_headers)
        assert report.status_code == 200 and report.json()["settled"] >= 1
        settled = (await client.get(f"/api/payments/{payment['id']}", headers=headers)).json()
        assert settled["status"] == "succeeded" and settled["gateway_charge_id"].startswith("ch_")
        [event] = await events_about(bus, "payment.succeeded", payment_id=payment["id"])
        assert event.payload["gateway_charge_id"] == settled["gateway_charge_id"]
    after = gateway_stats()
    assert after["charges"] - before["charges"] == 1
    assert after["charge_calls"] - before["charge_calls"] == 1


async def test_the_periodic_reconciler_settles_unknown_payments_by_itself(
    customer, add_card, start_replica, client, gateway_stats
):
    _, headers = customer
    before = gateway_stats()["charges"]
    async with start_replica(
        payment_gateway_timeout_s=0.3, run_consumer=False, run_relay=False, run_scheduler=True,
        payment_reconcile_after_s=[0], payment_reconcile_interval_s=0.05,
    ) as (_, http):
        payment = await unknown_payment(http, customer, add_card)
        assert payment["status"] == "unknown"

        async def settled():
            body = (await client.get(f"/api/payments/{payment['id']}", headers=headers)).json()
            return body["status"] == "succeeded"

        await wait_for(settled, timeout=10, message="the reconciler to settle the payment")
    assert gateway_stats()["charges"] - before == 1


async def test_reconcile_is_admin_only(client, customer):
    _, headers = customer
    response = await client.post("/api/payments/reconcile", json={}, headers=headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    "as_of",
    # The last: a typo for 2026, which would find every charge under way "never made" and fail it.
    ["9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59Z", "2026-03-01T00:00:00", "2062-03-01T00:00:00Z"],
)
async def test_a_reconcile_as_of_out_of_range_or_without_zone_or_too_far_ahead_is_422(client, admin_headers, as_of):
    response = await client.post("/api/payments/reconcile", json={"as_of": as_of}, headers=admin_headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == "as_of"


async def _pending_charge(db, customer_id, payment_id) -> None:
    """A payment as a request that is still waiting for the gateway leaves it: pending, never found there."""
    target = ChargeTarget(customer_id=customer_id, amount=2500, currency="USD", source="api", attempt=1,
                          gateway_key=f"test-never-sent-{payment_id}")
    async with db.uow() as uow:
        now = clock.now()
        await insert_payment(uow.session, new_payment(target, None, at=now, now=now, pending_grace_s=120,
                                                      payment_id=payment_id))
        await uow.commit()


async def test_a_run_far_ahead_does_not_fail_a_charge_whose_request_may_still_be_waiting_for_the_gateway(
    client, customer, admin_headers, db
):
    """A simulated week goes through the whole schedule in no real time: a payment made a moment ago may still
    be charged by the request that made it. One made longer ago than any request can wait is failed."""
    customer_id, headers = customer
    in_flight, abandoned = new_id(), id_made_at(datetime.now(UTC) - timedelta(minutes=10))
    for payment_id in (in_flight, abandoned):
        await _pending_charge(db, customer_id, payment_id)
    for days in (2, 4, 7):
        response = await client.post("/api/payments/reconcile", json={"as_of": later(days * 86_400)},
                                     headers=admin_headers)
        assert response.status_code == 200, response.text

    async with db.sessions() as session:
        still, failed = [await session.get(Payment, payment_id) for payment_id in (in_flight, abandoned)]
    assert still.status in ("pending", "unknown") and still.failure_code is None
    assert (failed.status, failed.failure_code) == ("failed", "charge_not_found")
