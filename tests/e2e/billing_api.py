"""The public API as the tests use it: small calls through the gateway, each failing loudly on an error.

Reads take the admin token (they observe; the flows themselves act with the customer's own token where a
customer would). Lists follow the cursor to the end, so a count is a count of everything.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

TEST_CARDS = {
    "ok": "4242424242424242",
    "declined": "4000000000000002",
    "insufficient_funds": "4000000000009995",
    "funds_arrive_later": "4000000000004442",  # its first charge fails (insufficient funds), later ones succeed
    "processing_error": "4000000000000119",
    "never_answers": "4000000000000259",
}


def idempotency_key() -> str:
    return f"e2e-{uuid.uuid4()}"


class Unavailable(AssertionError):
    """A 503 "retry later": e.g. the request drew a pooled database connection a fault test had just cut,
    before the service saw it closed."""


def check(response: httpx.Response, *expected: int) -> Any:
    """The JSON body of a response that has one of the expected statuses (else a readable failure)."""
    expected = expected or (200, 201)
    if response.status_code not in expected:
        problem = Unavailable if response.status_code == 503 else AssertionError
        raise problem(
            f"{response.request.method} {response.request.url.path} → {response.status_code}: {response.text[:800]}"
        )
    return response.json() if response.content else None


class BillingApi:
    """The gateway's public API for one test session (admin-authenticated unless headers are given)."""

    def __init__(self, stack: Any):
        self.stack = stack
        self.http = httpx.Client(base_url=stack.base_url, timeout=60)

    def close(self) -> None:
        self.http.close()

    def admin(self) -> dict[str, str]:
        return self.stack.admin_headers()

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers=headers if headers is not None else self.admin(), **kwargs)

    def list_all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {k: str(v) for k, v in params.items() if v is not None}
            query["limit"] = "100"
            if cursor:
                query["cursor"] = cursor
            page = check(self.request("GET", path, params=query), 200)
            items.extend(page["data"])
            if not page.get("has_more"):
                return items
            cursor = page["next_cursor"]

    # --- acting -----------------------------------------------------------------------------

    def create_plan(self, name: str, amount: int, currency: str = "USD", interval: str = "month") -> dict[str, Any]:
        body = {"name": name, "amount": amount, "currency": currency, "interval": interval}
        return check(self.request("POST", "/api/plans", json=body,
                                  headers={**self.admin(), "Idempotency-Key": idempotency_key()}), 201)

    def subscribe(self, customer: dict[str, Any], plan_id: str, key: str | None = None) -> dict[str, Any]:
        """Subscribe as the customer itself (its own token), with an Idempotency-Key."""
        response = self.request(
            "POST", "/api/subscriptions", json={"customer_id": customer["id"], "plan_id": plan_id},
            headers={**customer["headers"], "Idempotency-Key": key or idempotency_key()},
        )
        return check(response, 201)

    def add_card(self, customer: dict[str, Any], number: str) -> dict[str, Any]:
        body = {"card_number": number, "exp_month": 12, "exp_year": datetime.now().year + 3, "cvc": "123"}
        return check(self.request("POST", f"/api/customers/{customer['id']}/payment_methods", json=body,
                                  headers=customer["headers"]), 201)

    def cancel(self, subscription_id: str, **body: Any) -> dict[str, Any]:
        return check(self.request("POST", f"/api/subscriptions/{subscription_id}/cancel", json=body), 200)

    def billing_run(self, as_of: datetime) -> dict[str, Any]:
        return check(self.request("POST", "/api/billing-runs", json={"as_of": as_of.isoformat()}), 200, 201)

    def dunning_run(self, as_of: datetime) -> dict[str, Any]:
        return check(self.request("POST", "/api/dunning/runs", json={"as_of": as_of.isoformat()}), 200, 201)

    # --- observing --------------------------------------------------------------------------

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        return check(self.request("GET", f"/api/subscriptions/{subscription_id}"), 200)

    def invoices(self, customer_id: str, status: str | None = None) -> list[dict[str, Any]]:
        return self.list_all("/api/invoices", customer_id=customer_id, status=status)

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return check(self.request("GET", f"/api/invoices/{invoice_id}"), 200)

    def payments(self, customer_id: str) -> list[dict[str, Any]]:
        return self.list_all("/api/payments", customer_id=customer_id)

    def payment(self, payment_id: str) -> dict[str, Any]:
        return check(self.request("GET", f"/api/payments/{payment_id}"), 200)

    def credit_notes(self, customer_id: str) -> list[dict[str, Any]]:
        return self.list_all("/api/credit_notes", customer_id=customer_id)

    def dunning_cases(self, customer_id: str) -> list[dict[str, Any]]:
        return self.list_all("/api/dunning/cases", customer_id=customer_id)

    def gateway_stats(self) -> dict[str, int]:
        """The mock card provider's own counters (charges made, calls received), outside our services."""
        port = self.stack.stack.config.port("mock-gateway")
        return check(httpx.get(f"http://127.0.0.1:{port}/_stats", timeout=10), 200)

    def dead_letters(self, service: str) -> list[dict[str, Any]]:
        return check(self.request("GET", f"/api/{service}/dead-letters"), 200)["data"]

    # --- waiting ----------------------------------------------------------------------------

    def wait_for(self, probe: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
        """Poll until the probe answers; a 503 on the way counts as "not yet", as a careful client retries it."""
        last_refusal: list[Unavailable] = []

        def patient_probe() -> Any:
            try:
                return probe()
            except Unavailable as refusal:
                last_refusal[:] = [refusal]
                return None

        try:
            return self.stack.wait_for(patient_probe, timeout=timeout, interval=0.2, what=what)
        except AssertionError as exc:
            if last_refusal:
                raise AssertionError(f"{exc}; the last poll was refused: {last_refusal[0]}") from exc
            raise

    def handled(self, service: str, event_type: str) -> float:
        """How many events of this type the service has handled (not counting ignored duplicates)."""
        return metric(self.stack, service, "events_handled_total", type=event_type, outcome="handled")

    def wait_subscription_knows_paid(self, handled_before: float, paid: int = 1) -> None:
        """Wait until the subscription service has taken in `paid` more invoice.paid events.

        The invoice and subscription services agree only eventually: an invoice reads paid before the
        subscription service has counted the payment, and a cancel in that window credits nothing.
        """
        self.wait_for(lambda: self.handled("subscription", "invoice.paid") >= handled_before + paid,
                      what=f"the subscription service to take in {paid} invoice.paid event(s)")

    def subscribe_and_wait_paid(self, customer: dict[str, Any], plan_id: str) -> tuple[dict[str, Any], dict]:
        """Subscribe a new customer; return once its first invoice is paid and the subscription service has
        counted that payment: (subscription, invoice)."""
        paid_before = self.handled("subscription", "invoice.paid")
        subscription = self.subscribe(customer, plan_id)
        [invoice] = self.wait_invoices(customer["id"], 1, "paid")
        self.wait_subscription_knows_paid(paid_before)
        return subscription, invoice

    def wait_invoices(self, customer_id: str, count: int, status: str = "paid", timeout: float = 30) -> list[dict]:
        """Exactly `count` invoices of the customer in `status` (fails if more appear)."""
        found = self.wait_for(
            lambda: (lambda got: got if len(got) >= count else None)(self.invoices(customer_id, status)),
            timeout, f"{count} {status} invoice(s) of customer {customer_id}",
        )
        assert len(found) == count, f"expected {count} {status} invoices, found {len(found)}"
        return found


def metric(stack: Any, service: str, name: str, **labels: str) -> float:
    """Sum of a Prometheus counter on the service's own port (the gateway does not route /metrics)."""
    return counter_sum(metrics_text(stack, service), name, **labels)


def metrics_text(stack: Any, service: str) -> str:
    return httpx.get(f"http://127.0.0.1:{stack.stack.config.port(service)}/metrics", timeout=10).text


def counter_sum(text: str, name: str, **labels: str) -> float:
    """Sum of a counter's samples (with these labels) in a /metrics page."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[line.index("{"):line.index("}")]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def gateway_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after.get(key, 0) - before.get(key, 0) for key in after}
