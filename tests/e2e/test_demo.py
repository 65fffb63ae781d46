"""Every curl example of the original demo (shared/original-demo.md), in our API's form, through the gateway.

Our form: ids are UUIDs, every request carries a bearer token, money is integer minor units plus a currency,
a card needs its expiry and CVC (and a number that passes Luhn), and POSTs that move money take an
Idempotency-Key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from billing_api import TEST_CARDS, check, idempotency_key
from sink_mail import assert_exactly, text_of, of_kind, wait_mail


def card_body(number: str) -> dict[str, Any]:
    return {"card_number": number, "exp_month": 12, "exp_year": datetime.now().year + 3, "cvc": "123"}


def test_create_customer_takes_the_demo_body(stack, api):
    demo = {"email": "test@example.com", "name": "Test User", "role": "user"}
    assert api.request("POST", "/api/customers", json=demo, headers={}).status_code == 401

    created = check(api.request("POST", "/api/customers", json=demo), 201)

    assert {created["email"], created["name"], created["role"]} == {"test@example.com", "Test User", "user"}
    read = check(api.request("GET", f"/api/customers/{created['id']}"), 200)
    assert read["id"] == created["id"] and read["email"] == "test@example.com"
    wait_mail(stack, "test@example.com", {"welcome": 1})


def test_add_payment_method_refuses_the_demo_number_and_keeps_only_a_token(stack, api):
    customer = stack.new_customer("Demo Card", card=None)
    path = f"/api/customers/{customer['id']}/payment_methods"

    as_in_the_demo = api.request("POST", path, json={"card_number": "1234567890123456"}, headers=customer["headers"])
    fails_luhn = api.request("POST", path, json=card_body("1234567890123456"), headers=customer["headers"])
    added = check(api.request("POST", path, json=card_body(TEST_CARDS["ok"]), headers=customer["headers"]), 201)

    assert as_in_the_demo.status_code == 422  # no expiry, no CVC
    assert as_in_the_demo.json()["error"]["field"] in ("exp_month", "exp_year", "cvc")
    assert fails_luhn.status_code == 422
    error = fails_luhn.json()["error"]
    assert error["field"] == "card_number" and "1234567890123456" not in fails_luhn.text
    assert (added["brand"], added["last4"], added["is_default"]) == ("visa", "4242", True)
    assert "card_number" not in added and TEST_CARDS["ok"] not in str(added)


def test_process_payment_in_minor_units_with_an_idempotency_key(stack, api):
    customer = stack.new_customer("Demo Payment")
    method_id = customer["payment_method"]["id"]
    demo = {"customer_id": customer["id"], "amount": 50.0, "payment_method_id": method_id}
    ours = {"customer_id": customer["id"], "amount": 5000, "currency": "USD", "payment_method_id": method_id}
    path = "/api/payments"

    float_amount = api.request("POST", path, json=demo, headers={**customer["headers"], "Idempotency-Key": idempotency_key()})
    no_key = api.request("POST", path, json=ours, headers=customer["headers"])
    paid = check(api.request("POST", path, json=ours, headers={**customer["headers"], "Idempotency-Key": idempotency_key()}), 201)

    assert float_amount.status_code == 422 and float_amount.json()["error"]["field"] in ("amount", "currency")
    assert no_key.status_code == 400 and no_key.json()["error"]["field"] == "Idempotency-Key"
    assert (paid["status"], paid["amount"], paid["currency"]) == ("succeeded", 5000, "USD")
    assert [p["id"] for p in api.payments(customer["id"])] == [paid["id"]]


def test_create_subscription_takes_the_demo_body_and_bills_it(stack, api):
    customer = stack.new_customer("Demo Subscriber")
    demo = {"customer_id": customer["id"], "plan_name": "Pro", "price": 50.0, "billing_interval": "monthly"}

    # Only an admin's demo body may create the plan it names; a customer's then finds that plan.
    created = check(api.request("POST", "/api/subscriptions", json=demo,
                                headers={**api.admin(), "Idempotency-Key": idempotency_key()}), 201)
    again = check(api.request("POST", "/api/subscriptions", json=demo,
                              headers={**customer["headers"], "Idempotency-Key": idempotency_key()}), 201)

    assert created["status"] == "active" and again["plan_id"] == created["plan_id"]
    assert (created["plan"]["name"], created["plan"]["amount"], created["plan"]["currency"]) == ("Pro", 5000, "USD")
    assert created["plan"]["interval"] == "month"
    invoices = api.wait_invoices(customer["id"], 2, "paid")
    # The demo answered with the new invoice's id: here, the subscription's period_invoice_id names it.
    assert sorted((i["id"], i["subscription_id"]) for i in invoices) == sorted(
        [(created["period_invoice_id"], created["id"]), (again["period_invoice_id"], again["id"])]
    )
    assert {(i["total"], i["amount_paid"]) for i in invoices} == {(5000, 5000)}
    wait_mail(stack, customer["email"], {"invoice_finalized": 2, "invoice_paid": 2})
    assert_exactly(stack, customer["email"], {"welcome": 1, "invoice_finalized": 2, "invoice_paid": 2})


def test_cancel_subscription_with_no_body_refunds_the_unused_part_and_says_how_much(stack, api):
    customer = stack.new_customer("Demo Canceler")
    plan = api.create_plan("Demo cancel plan", 3000)
    subscription, _ = api.subscribe_and_wait_paid(customer, plan["id"])

    canceled = check(api.request("POST", f"/api/subscriptions/{subscription['id']}/cancel",
                                 headers=customer["headers"]), 200)

    assert canceled["status"] == "canceled"
    credit = canceled["credit_amount"]
    assert 0 < credit <= 3000
    mails = wait_mail(stack, customer["email"], {"subscription_canceled": 1, "credit_note_issued": 1})
    [notice] = of_kind(mails, "subscription_canceled")
    assert f"{credit / 100:.2f}" in text_of(notice)
    [note] = api.wait_for(lambda: api.credit_notes(customer["id"]) or None, what="the credit note")
    assert (note["amount"], note["refund_amount"]) == (credit, credit)
    api.wait_for(lambda: [p for p in api.payments(customer["id"]) if p["refunded_amount"] == credit] or None,
                 what=f"a refund of {credit}")


def test_get_invoice_shows_the_demo_fields_to_its_customer_only(stack, api):
    customer = stack.new_customer("Demo Invoice")
    stranger = stack.new_customer("Demo Stranger", card=None)
    plan = api.create_plan("Demo invoice plan", 1999)
    api.subscribe(customer, plan["id"])
    [listed] = api.wait_invoices(customer["id"], 1, "paid")

    invoice = check(api.request("GET", f"/api/invoices/{listed['id']}", headers=customer["headers"]), 200)
    page = api.request("GET", f"/invoices/{listed['id']}", headers=customer["headers"])
    hidden = api.request("GET", f"/api/invoices/{listed['id']}", headers=stranger["headers"])

    assert invoice["customer_id"] == customer["id"]
    assert (invoice["total"], invoice["currency"], invoice["status"]) == (1999, "USD", "paid")
    assert invoice["due_at"] and invoice["number"]
    assert page.status_code == 200 and invoice["number"] in page.text and "19.99" in page.text
    assert hidden.status_code == 404


def test_dashboard_refuses_role_admin_in_the_query_without_sign_in(stack, api):
    response = api.http.get("/dashboard?role=admin", follow_redirects=False)

    assert response.status_code in (302, 303, 307, 401, 403)
    if response.status_code in (302, 303, 307):
        assert "login" in response.headers["location"] or "sign" in response.headers["location"]
        landing = api.http.get(response.headers["location"], follow_redirects=True)
        assert landing.status_code in (200, 401, 403) and "test@example.com" not in landing.text
