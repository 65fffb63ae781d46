"""The flows of ARCHITECTURE.md end to end: only the gateway's public API in, only the SMTP sink's mail out.

Business time moves only through the APIs' `as_of` (billing runs, dunning runs) and admin proration dates.
Tests that move it for everyone are marked `time_travel` and run first in the session.
"""

from __future__ import annotations

import asyncio
import calendar
import uuid
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import asyncpg
import pytest

from billing_api import TEST_CARDS, check, gateway_delta, idempotency_key
from sink_mail import assert_exactly, of_kind, text_of, wait_mail


def at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def add_months(anchor: datetime, months: int) -> datetime:
    index = anchor.month - 1 + months
    year, month = anchor.year + index // 12, index % 12 + 1
    return anchor.replace(year=year, month=month, day=min(anchor.day, calendar.monthrange(year, month)[1]))


def test_subscribe_invoices_charges_and_sends_a_receipt(stack, api):
    customer = stack.new_customer("Flow Subscriber")
    plan = api.create_plan("Flow basic", 2500)
    before = api.gateway_stats()

    subscription = api.subscribe(customer, plan["id"])

    [invoice] = api.wait_invoices(customer["id"], 1, "paid")
    assert (invoice["subscription_id"], invoice["total"], invoice["amount_paid"], invoice["amount_due"]) == (
        subscription["id"], 2500, 2500, 0)
    [payment] = api.payments(customer["id"])
    assert (payment["status"], payment["amount"], payment["invoice_id"]) == ("succeeded", 2500, invoice["id"])
    mails = wait_mail(stack, customer["email"], {"invoice_finalized": 1, "invoice_paid": 1})
    [receipt] = of_kind(mails, "invoice_paid")
    assert invoice["number"] in str(receipt["Subject"]) + text_of(receipt) and "25.00" in text_of(receipt)
    # The invoice email carries the PDF, fetched by the notifier (which holds no API key) with the signed link.
    [invoice_mail] = of_kind(mails, "invoice_finalized")
    [pdf] = [part for part in invoice_mail.iter_attachments() if part.get_content_type() == "application/pdf"]
    assert pdf.get_content().startswith(b"%PDF") and invoice["number"].lstrip("#") in pdf.get_filename()
    assert_exactly(stack, customer["email"], {"welcome": 1, "invoice_finalized": 1, "invoice_paid": 1})
    assert gateway_delta(before, api.gateway_stats())["charges"] == 1


def test_failed_payment_is_retried_at_once_when_a_new_card_is_added_and_recovers(stack, api):
    customer = stack.new_customer("Flow Recovery", card=TEST_CARDS["insufficient_funds"])
    plan = api.create_plan("Flow recovery plan", 1500)
    subscription = api.subscribe(customer, plan["id"])

    [case] = api.wait_for(lambda: api.dunning_cases(customer["id"]) or None, what="a dunning case")
    assert (case["status"], case["failures"], case["amount"]) == ("open", 1, 1500)
    assert at(case["next_retry_at"]) > at(case["opened_at"])
    mails = wait_mail(stack, customer["email"], {"payment_failed": 1})
    assert "15.00" in text_of(of_kind(mails, "payment_failed")[0])
    assert api.invoices(customer["id"], "paid") == []

    new_card = api.add_card(customer, TEST_CARDS["ok"])

    [invoice] = api.wait_invoices(customer["id"], 1, "paid")
    recovered = api.wait_for(
        lambda: [c for c in api.dunning_cases(customer["id"]) if c["status"] == "recovered"] or None,
        what="the case recovered")
    assert recovered[0]["id"] == case["id"]
    succeeded = [p for p in api.payments(customer["id"]) if p["status"] == "succeeded"]
    assert [(p["payment_method_id"], p["invoice_id"]) for p in succeeded] == [(new_card["id"], invoice["id"])]
    wait_mail(stack, customer["email"], {"invoice_paid": 1})
    assert_exactly(stack, customer["email"], {"welcome": 1, "invoice_finalized": 1, "payment_failed": 1,
                                              "invoice_paid": 1})
    assert api.subscription(subscription["id"])["status"] == "active"


@pytest.mark.time_travel
def test_three_failures_suspend_the_subscription_and_make_the_invoice_uncollectible(stack, api):
    customer = stack.new_customer("Flow Exhausted", card=TEST_CARDS["insufficient_funds"])
    plan = api.create_plan("Flow dunning plan", 4200)
    subscription = api.subscribe(customer, plan["id"])
    [case] = api.wait_for(lambda: api.dunning_cases(customer["id"]) or None, what="a dunning case")
    first_retry = at(case["next_retry_at"])

    api.dunning_run(first_retry)
    case = api.wait_for(lambda: next((c for c in api.dunning_cases(customer["id"]) if c["failures"] == 2), None),
                        what="the second failure")
    second_retry = at(case["next_retry_at"])
    assert second_retry > first_retry
    api.dunning_run(second_retry)

    exhausted = api.wait_for(
        lambda: next((c for c in api.dunning_cases(customer["id"]) if c["status"] == "exhausted"), None),
        what="the case exhausted")
    assert exhausted["failures"] == 3
    [invoice] = api.wait_invoices(customer["id"], 1, "uncollectible")
    assert invoice["amount_paid"] == 0 and invoice["total"] == 4200
    suspended = api.wait_for(lambda: (lambda s: s if s["status"] == "suspended" else None)(
        api.subscription(subscription["id"])), what="the subscription suspended")
    assert suspended["service_ends_at"] is not None
    failed = [p for p in api.payments(customer["id"]) if p["status"] == "failed"]
    assert sorted(p["attempt"] for p in failed) == [1, 2, 3]
    # The second failure schedules the last retry: its final notice is the one email about it.
    wait_mail(stack, customer["email"], {"payment_failed": 1, "final_notice": 1, "subscription_suspended": 1})
    assert_exactly(stack, customer["email"], {"welcome": 1, "invoice_finalized": 1, "payment_failed": 1,
                                              "final_notice": 1, "subscription_suspended": 1})


@pytest.mark.time_travel
def test_a_year_of_billing_runs_renews_twelve_times_on_calendar_months(stack, api):
    customer = stack.new_customer("Flow Year")
    plan = api.create_plan("Flow monthly", 1000)
    subscription = api.subscribe(customer, plan["id"])
    api.wait_invoices(customer["id"], 1, "paid")
    anchor = at(subscription["current_period_start"])
    before = api.gateway_stats()

    for month in range(1, 13):
        due = at(api.subscription(subscription["id"])["current_period_end"])
        assert due == add_months(anchor, month)
        run = api.billing_run(due)
        assert run["renewed"] >= 1 and run["failed"] == 0
        renewed = api.subscription(subscription["id"])
        assert (renewed["current_period_index"], at(renewed["current_period_start"])) == (month, due)

    invoices = api.wait_invoices(customer["id"], 13, "paid", timeout=60)
    periods = sorted((at(i["period"]["start"]), at(i["period"]["end"])) for i in invoices)
    assert periods == [(add_months(anchor, m), add_months(anchor, m + 1)) for m in range(13)]
    assert len({i["number"] for i in invoices}) == 13
    assert gateway_delta(before, api.gateway_stats())["charges"] == 12
    wait_mail(stack, customer["email"], {"invoice_paid": 13}, timeout=60)
    assert_exactly(stack, customer["email"], {"welcome": 1, "invoice_finalized": 13, "invoice_paid": 13})


@pytest.mark.time_travel  # after the year of runs: its billing runs would renew this subscription too
def test_a_scheduled_dunning_retry_recovers_once_the_funds_are_there(stack, api):
    customer = stack.new_customer("Flow Retry Recovery", card=TEST_CARDS["funds_arrive_later"])
    plan = api.create_plan("Flow retry plan", 3300)
    subscription = api.subscribe(customer, plan["id"])
    [case] = api.wait_for(lambda: api.dunning_cases(customer["id"]) or None, what="a dunning case")
    assert (case["status"], case["failures"], case["amount"]) == ("open", 1, 3300)
    wait_mail(stack, customer["email"], {"payment_failed": 1})
    before = api.gateway_stats()

    api.dunning_run(at(case["next_retry_at"]))

    recovered = api.wait_for(
        lambda: next((c for c in api.dunning_cases(customer["id"]) if c["status"] == "recovered"), None),
        what="the case recovered")
    assert (recovered["id"], recovered["failures"]) == (case["id"], 1)
    [invoice] = api.wait_invoices(customer["id"], 1, "paid")
    attempts = sorted((p["attempt"], p["status"], p["amount"], p["invoice_id"]) for p in api.payments(customer["id"]))
    assert attempts == [(1, "failed", 3300, invoice["id"]), (2, "succeeded", 3300, invoice["id"])]
    assert gateway_delta(before, api.gateway_stats())["charges"] == 1
    wait_mail(stack, customer["email"], {"invoice_paid": 1})
    assert_exactly(stack, customer["email"], {"welcome": 1, "invoice_finalized": 1, "payment_failed": 1,
                                              "invoice_paid": 1})
    assert api.wait_for(lambda: (lambda s: s if s["status"] == "active" else None)(
        api.subscription(subscription["id"])), what="the subscription active again")


def test_cancel_midway_credits_unused_days_refunds_them_and_says_how_much(stack, api):
    customer = stack.new_customer("Flow Canceler")
    plan = api.create_plan("Flow cancel plan", 3000)
    subscription, invoice = api.subscribe_and_wait_paid(customer, plan["id"])
    start, end = at(subscription["current_period_start"]), at(subscription["current_period_end"])
    days = (end.date() - start.date()).days
    before = api.gateway_stats()

    canceled = api.cancel(subscription["id"], proration_date=(start + timedelta(days=10, hours=1)).isoformat())

    unused = days - 10
    expected = int((Decimal(3000 * unused) / days).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert (canceled["status"], canceled["credit_amount"]) == ("canceled", expected)
    assert any(line.get("unused_days") == unused and line["amount"] == -expected for line in canceled["lines"])
    [note] = api.wait_for(lambda: api.credit_notes(customer["id"]) or None, what="a credit note")
    assert (note["invoice_id"], note["amount"], note["refund_due"]) == (invoice["id"], expected, True)
    [payment] = api.wait_for(
        lambda: [p for p in api.payments(customer["id"]) if p["refunded_amount"] == expected] or None,
        what="the refund")
    assert payment["amount"] == 3000
    mails = wait_mail(stack, customer["email"], {"subscription_canceled": 1, "credit_note_issued": 1})
    amount = f"{expected / 100:.2f}"
    assert amount in text_of(of_kind(mails, "subscription_canceled")[0])
    assert amount in text_of(of_kind(mails, "credit_note_issued")[0])
    assert gateway_delta(before, api.gateway_stats())["refunds"] == 1
    assert_exactly(stack, customer["email"], {"welcome": 1, "invoice_finalized": 1, "invoice_paid": 1,
                                              "subscription_canceled": 1, "credit_note_issued": 1})


def test_one_off_payment_replays_for_the_same_key_and_refuses_another_body(stack, api):
    customer = stack.new_customer("Flow One-off")
    body = {"customer_id": customer["id"], "amount": 1234, "currency": "EUR", "description": "setup fee"}
    key = idempotency_key()
    headers = {**customer["headers"], "Idempotency-Key": key}
    before = api.gateway_stats()

    first = api.request("POST", "/api/payments", json=body, headers=headers)
    replay = api.request("POST", "/api/payments", json=body, headers=headers)
    other = api.request("POST", "/api/payments", json={**body, "amount": 4321}, headers=headers)

    assert first.status_code == replay.status_code == 201
    assert first.json() == replay.json() and first.json()["status"] == "succeeded"
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_error"
    assert [p["id"] for p in api.payments(customer["id"])] == [first.json()["id"]]
    assert gateway_delta(before, api.gateway_stats())["charges"] == 1


def test_one_off_payment_that_fails_goes_to_dunning_and_its_emails_threaten_no_suspension(stack, api):
    customer = stack.new_customer("Flow One-off Fail", card=TEST_CARDS["insufficient_funds"])
    body = {"customer_id": customer["id"], "amount": 990, "currency": "USD", "description": "Setup fee"}

    failed = check(api.request("POST", "/api/payments", json=body,
                               headers={**customer["headers"], "Idempotency-Key": idempotency_key()}), 201)

    assert (failed["status"], failed["failure_code"]) == ("failed", "insufficient_funds")
    [case] = api.wait_for(lambda: api.dunning_cases(customer["id"]) or None, what="a dunning case")
    assert (case["payment_id"], case["invoice_id"], case["status"]) == (failed["id"], None, "open")
    assert case["description"] == "Setup fee"
    wait_mail(stack, customer["email"], {"payment_failed": 1})

    for failures in (2, 3):  # the two retries fail too
        api.dunning_run(at(case["next_retry_at"]))
        case = api.wait_for(lambda: next((c for c in api.dunning_cases(customer["id"]) if c["failures"] == failures),
                                         None), what=f"failure {failures}")
    assert case["status"] == "exhausted"
    expected = {"welcome": 1, "payment_failed": 1, "final_notice": 1, "payment_uncollected": 1}
    mails = wait_mail(stack, customer["email"], expected)
    assert_exactly(stack, customer["email"], expected)
    for kind in ("payment_failed", "final_notice", "payment_uncollected"):
        [mail] = of_kind(mails, kind)
        assert "$9.90 (Setup fee)" in " ".join(text_of(mail).split()), kind  # what the payment was for
        assert "suspend" not in text_of(mail).lower()


def paid_by_hand_while_its_charge_hangs(stack, api, name: str, amount: int) -> tuple[dict, dict, dict, dict]:
    """An invoice paid twice the way it happens: the automatic charge's answer is lost (the card "never
    answers": the provider made the charge), the customer pays by hand with another card once its outcome is unknown
    (while it is still being charged, a payment by hand is refused), then the reconciler finds the first charge went
    through. (subscription, invoice, the payment by hand, the charge.)"""
    customer = stack.new_customer(name, card=TEST_CARDS["never_answers"])
    other_card = api.add_card(customer, TEST_CARDS["ok"])
    plan = api.create_plan(f"{name} plan", amount)
    subscription = api.subscribe(customer, plan["id"])
    [invoice] = api.wait_invoices(customer["id"], 1, "open")
    api.wait_for(lambda: any(p["status"] == "unknown" for p in api.payments(customer["id"])),
                 what="the automatic charge's answer given up on (status unknown)")
    by_hand = check(api.request(
        "POST", "/api/payments", json={"customer_id": customer["id"], "amount": amount, "currency": "USD",
                                       "invoice_id": invoice["id"], "payment_method_id": other_card["id"]},
        headers={**customer["headers"], "Idempotency-Key": idempotency_key()}), 201)
    assert by_hand["status"] == "succeeded"
    charge = api.wait_for(lambda: next((p for p in api.payments(customer["id"])
                                        if p["id"] != by_hand["id"] and p["status"] == "succeeded"), None),
                          what="the automatic charge reconciled as made")
    return {**subscription, "customer": customer}, invoice, by_hand, charge


def test_an_invoice_paid_twice_gives_the_second_payment_back_and_says_so(stack, api):
    subscription, invoice, by_hand, charge = paid_by_hand_while_its_charge_hangs(stack, api, "Flow Paid Twice", 2000)
    customer = subscription["customer"]
    [refunded] = api.wait_for(
        lambda: [p for p in api.payments(customer["id"]) if p["id"] == charge["id"] and p["refunded_amount"] == 2000]
        or None, what="the payment that came second refunded")
    assert refunded["amount"] == 2000
    assert api.payment(by_hand["id"])["refunded_amount"] == 0
    after = api.wait_for(lambda: next((i for i in api.invoices(customer["id"], "paid")
                                       if i["amount_refunded"] == 2000), None), what="the invoice's books")
    assert (after["id"], after["amount_paid"], after["amount_due"]) == (invoice["id"], 4000, 0)
    mails = wait_mail(stack, customer["email"], {"payment_refunded": 1})
    assert "20.00" in text_of(of_kind(mails, "payment_refunded")[0])
    assert "already been paid" in text_of(of_kind(mails, "payment_refunded")[0])
    assert_exactly(stack, customer["email"], {"welcome": 1, "invoice_finalized": 1, "invoice_paid": 1,
                                              "payment_refunded": 1})


def test_an_invoice_already_paid_is_refused_a_payment_by_hand_and_nothing_is_charged(stack, api):
    customer = stack.new_customer("Flow Paid By Hand Again")
    plan = api.create_plan("Flow paid by hand again plan", 2000)
    _, invoice = api.subscribe_and_wait_paid(customer, plan["id"])
    before = api.gateway_stats()
    again = api.request(
        "POST", "/api/payments", json={"customer_id": customer["id"], "amount": 2000, "currency": "USD",
                                       "invoice_id": invoice["id"]},
        headers={**customer["headers"], "Idempotency-Key": idempotency_key()})
    assert check(again, 409)["error"]["code"] == "invoice_paid"
    assert gateway_delta(before, api.gateway_stats())["charges"] == 0
    assert len(api.payments(customer["id"])) == 1


def _legacy_sql(stack, sql: str, *args) -> None:
    """Write to the invoice schema as migration 0002 leaves data written before it (no public API does this)."""
    async def run() -> None:
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{stack.stack.config.database}")
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    asyncio.run(run())


def test_a_credit_after_a_legacy_second_payment_refunded_by_hand_is_refunded_from_the_payment_kept(stack, api):
    """Before invoice.overpaid, a second payment of a paid invoice was kept and refunded by a person (the payment
    API); migration 0002 leaves it with refunded = 0 on the invoice's side. A later credit must still come back."""
    subscription, invoice, first, again = paid_by_hand_while_its_charge_hangs(stack, api, "Flow Legacy Paid Twice",
                                                                             3000)
    customer = subscription["customer"]
    api.wait_for(lambda: api.invoice(invoice["id"])["amount_refunded"] == 3000 or None, what="overpayment booked")
    api.wait_for(lambda: api.payment(again["id"])["refunded_amount"] == 3000 or None, what="second payment refunded")
    # What an invoice paid twice before migration 0002 looks like once a person refunded the second payment.
    _legacy_sql(stack, "UPDATE invoice.invoice_payments SET refunded = 0 WHERE payment_id = $1",
                uuid.UUID(again["id"]))
    _legacy_sql(stack, "UPDATE invoice.invoices SET amount_refunded = 0 WHERE id = $1",
                uuid.UUID(invoice["id"]))
    before = api.gateway_stats()

    start = at(subscription["current_period_start"])
    canceled = api.cancel(subscription["id"], proration_date=(start + timedelta(days=10, hours=1)).isoformat())

    expected = canceled["credit_amount"]
    [note] = api.wait_for(lambda: api.credit_notes(customer["id"]) or None, what="a credit note")
    assert note["refund_amount"] == expected
    api.wait_for(lambda: api.payment(first["id"])["refunded_amount"] == expected or None, timeout=15,
                 what="the credit refunded from the payment the invoice kept")
    assert note["payment_id"] == first["id"]
    assert gateway_delta(before, api.gateway_stats())["refunds"] == 1
