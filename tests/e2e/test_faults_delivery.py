"""The broker misbehaves at the message level: every event delivered three times; a poison message."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from billing_shared.amqp import OUTAGE_SINCE_HEADER
from billing_shared.bootstrap import SERVICES
from billing_api import TEST_CARDS, check, gateway_delta, metric
from faults import SubscribeFlows, publish_event, publish_raw, restart_many, save_artifact
from sink_mail import assert_exactly


@pytest.fixture
def every_event_three_times(stack: Any) -> Any:
    """Every relay publishes each outbox row three times (the services' own fault-injection switch)."""
    restart_many(stack, SERVICES, {"RELAY_PUBLISH_COPIES": "3"})
    try:
        yield
    finally:
        restart_many(stack, SERVICES, {"RELAY_PUBLISH_COPIES": "1"})


def test_every_event_delivered_three_times_changes_nothing(stack, api, every_event_three_times):
    flows = SubscribeFlows.prepare(api, stack, 2, label="Triple")
    recovering = stack.new_customer("Triple recovery", card=TEST_CARDS["insufficient_funds"])
    canceling = stack.new_customer("Triple cancel")
    plan = flows.plan

    flows.subscribe_all()
    api.subscribe(recovering, plan["id"])
    to_cancel = api.subscribe(canceling, plan["id"])
    api.wait_for(lambda: api.dunning_cases(recovering["id"]) or None, what="the dunning case")
    api.add_card(recovering, TEST_CARDS["ok"])
    for customer in [*flows.customers, recovering, canceling]:
        api.wait_invoices(customer["id"], 1, "paid")
    api.wait_subscription_knows_paid(0, paid=4)  # counted since the restart
    start = api.subscription(to_cancel["id"])["current_period_start"]
    proration = (datetime.fromisoformat(start) + timedelta(days=5, hours=1)).isoformat()
    credit = api.cancel(to_cancel["id"], proration_date=proration)["credit_amount"]

    report = flows.assert_all_complete(timeout=60, only_these_charged=False)
    api.wait_invoices(recovering["id"], 1, "paid")
    [case] = api.dunning_cases(recovering["id"])
    assert (case["status"], case["failures"]) == ("recovered", 1)
    assert sorted(p["status"] for p in api.payments(recovering["id"])) == ["failed", "succeeded"]
    [note] = api.wait_for(lambda: api.credit_notes(canceling["id"]) or None, what="the credit note")
    assert note["amount"] == credit > 0
    api.wait_for(lambda: [p for p in api.payments(canceling["id"]) if p["refunded_amount"] == credit] or None,
                 what="the refund")
    assert_exactly(stack, recovering["email"], {"welcome": 1, "invoice_finalized": 1, "payment_failed": 1,
                                                "invoice_paid": 1})
    assert_exactly(stack, canceling["email"], {"welcome": 1, "invoice_finalized": 1, "invoice_paid": 1,
                                               "subscription_canceled": 1, "credit_note_issued": 1})
    delta = gateway_delta(flows.gateway_before, api.gateway_stats())
    # Two subscribers and the canceler charged once each; the recovering customer declined once, then paid once.
    assert (delta["charges_succeeded"], delta["charges"], delta["refunds"]) == (4, 5, 1), delta
    assert len(api.invoices(canceling["id"])) == len(api.invoices(recovering["id"])) == 1
    # The copies really arrived: every consumer saw (and ignored) duplicates since its restart.
    duplicates = {service: metric(stack, service, "events_handled_total", outcome="duplicate")
                  for service in SERVICES if service != "customer"}
    assert all(count > 0 for count in duplicates.values()), duplicates
    save_artifact("fault-triple-delivery.json", {**report, "gateway": delta, "duplicates_ignored": duplicates})


def test_poison_messages_are_dead_lettered_the_rest_flows_on_and_replay_works_after_a_fix(stack, api):
    garbage_id = f"poison-{uuid.uuid4()}"
    stranger_id = str(uuid.uuid4())
    stranger_email = f"e2e-poison-{stranger_id[:8]}@example.com"
    # Unreadable bytes, and a well-formed event about a customer the notifier has never heard of. The notifier waits
    # for such a customer's customer.created for AWAITING_RETRY_S (6 h) before it gives up: this one has waited 7 h
    # already (an admin's typo, say), so it goes to the DLQ after its last ordinary try.
    publish_raw(stack, "dunning.final_notice", b"\x00not json{", garbage_id)
    waiting_since_ms = int((time.time() - 7 * 3600) * 1000)
    notice_id = publish_event(stack, "dunning.final_notice", {
        "case_id": str(uuid.uuid4()), "customer_id": stranger_id, "amount": 777, "currency": "USD",
        "retry_at": "2030-01-02T00:00:00Z"}, headers={OUTAGE_SINCE_HEADER: waiting_since_ms})

    flows = SubscribeFlows.prepare(api, stack, 1, label="Poison bystander")
    flows.subscribe_all()
    flows.assert_all_complete(timeout=60)
    letters = api.wait_for(
        lambda: (lambda ids: ids if {garbage_id, notice_id} <= ids else None)(
            {letter["event_id"] for letter in api.dead_letters("notifier")}),
        timeout=60, what="both poison messages in notifier.dlq")
    assert stack.emails(to=stranger_email) == []

    # The fix: the customer becomes known (its customer.created arrives), then an admin replays the DLQ.
    publish_event(stack, "customer.created", {"customer_id": stranger_id, "email": stranger_email,
                                              "name": "Late Customer"})
    replay = check(api.request("POST", "/api/notifier/dead-letters/replay"), 200)
    replayed = replay["replayed"]

    assert replayed >= 1 and {garbage_id, notice_id} <= letters
    # An id that is no UUIDv7 tells no age: whether the inbox still remembers it is unknown, so it is kept back.
    assert [k["event_id"] for k in replay["kept"]] == [garbage_id]
    assert_exactly(stack, stranger_email, {"welcome": 1, "final_notice": 1})
    forced = api.request("POST", "/api/notifier/dead-letters/replay", params={"force": "true"}, json=[garbage_id])
    assert check(forced, 200) == {"replayed": 1, "kept": []}
    still_dead = api.wait_for(
        lambda: (lambda ids: ids if garbage_id in ids else None)(
            {letter["event_id"] for letter in api.dead_letters("notifier")}),
        timeout=30, what="the unreadable message back in the DLQ")
    assert notice_id not in still_dead
    save_artifact("fault-poison.json", {"replayed": replayed, "dead_after_replay": sorted(still_dead),
                                        "notice": json.dumps({"event_id": notice_id})})
