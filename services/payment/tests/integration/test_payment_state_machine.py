"""A hypothesis state machine over charge / replay / refund / reconcile, through the real API and database,
against an in-memory gateway whose answers it scripts (decline, or a lost answer before or after charging).

Invariants after every step: a payment only moves along allowed transitions; refunded ≤ captured, in the
database and at the gateway; what we call succeeded the gateway charged, what it never charged we never
call succeeded; a replayed request answers exactly as the first did.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import select

from app.adapters.gateway import CardToken, ChargeResult, RefundResult
from app.db.models import Payment, Refund
from app.domain.payments import ALLOWED_TRANSITIONS
from tests.conftest import card_body

CHARGE_PLANS = ["succeed", "decline_hard", "decline_soft", "lost_after_charging", "lost_before_charging"]
EXPECTED_STATUS = {
    "succeed": "succeeded",
    "decline_hard": "failed",
    "decline_soft": "failed",
    "lost_after_charging": "unknown",
    "lost_before_charging": "unknown",
}


class ScriptedGateway:
    """An in-memory provider, idempotent per key like the real one; the next answer is chosen by the test."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.charges: dict[str, ChargeResult] = {}
        self.charge_amounts: dict[str, int] = {}
        self.refunds: dict[str, RefundResult] = {}  # the keys it still deduplicates
        self.refunds_made: dict[str, RefundResult] = {}  # every refund, by key, for a lookup: kept for good
        self.refunded: dict[str, int] = defaultdict(int)
        self.next_charge = "succeed"
        self.next_refund = "ok"

    async def tokenize(self, number: str, exp_month: int, exp_year: int, cvc: str) -> CardToken:
        return CardToken(f"tok_{next(self.ids)}", "visa", number[-4:], exp_month, exp_year)

    async def charge(self, token: str, amount: int, currency: str, idempotency_key: str,
                     description: str | None = None) -> ChargeResult:
        if idempotency_key in self.charges:
            return self.charges[idempotency_key]
        plan = self.next_charge
        if plan == "lost_before_charging":
            return ChargeResult("unknown", message="connection reset before the request was read")
        charge_id = f"ch_{next(self.ids)}"
        if plan.startswith("decline"):
            result = ChargeResult("failed", charge_id, "card_declined", "hard" if plan == "decline_hard" else "soft")
        else:
            result = ChargeResult("succeeded", charge_id, amount=amount, currency=currency)
            self.charge_amounts[charge_id] = amount
        self.charges[idempotency_key] = result
        return ChargeResult("unknown", message="timed out") if plan == "lost_after_charging" else result

    async def refund(self, charge_id: str, amount: int, idempotency_key: str) -> RefundResult:
        if idempotency_key in self.refunds:
            return self.refunds[idempotency_key]
        if charge_id not in self.charge_amounts:
            return RefundResult("failed", failure_code="charge_not_refundable")
        if self.refunded[charge_id] + amount > self.charge_amounts[charge_id]:
            return RefundResult("failed", failure_code="amount_too_large")
        self.refunded[charge_id] += amount
        result = RefundResult("succeeded", f"re_{next(self.ids)}", amount)
        self.refunds[idempotency_key] = self.refunds_made[idempotency_key] = result
        return RefundResult("unknown", message="timed out") if self.next_refund == "lost" else result

    async def retrieve(self, idempotency_key: str) -> ChargeResult | None:
        return self.charges.get(idempotency_key)

    async def retrieve_refund(self, idempotency_key: str) -> RefundResult | None:
        return self.refunds_made.get(idempotency_key)

    def forget_refund_keys(self) -> None:
        """The provider's idempotency window ends (24 h at Stripe): a key sent again makes a new refund."""
        self.refunds.clear()


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    app: Any
    http: httpx.AsyncClient
    gateway: ScriptedGateway
    admin: dict[str, str]

    def run(self, coro):
        return self.loop.run_until_complete(coro)


@pytest.fixture(scope="module")
def harness(payment_env, admin_headers):
    """The service on a private event loop (the machine is synchronous), its gateway replaced by the script."""
    from app.main import create_app
    from app.settings import Settings

    loop = asyncio.new_event_loop()
    app = create_app(Settings(run_consumer=False, run_relay=False, run_scheduler=False))
    gateway = ScriptedGateway()
    app.state.payment.bind_gateway(gateway)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    yield Harness(loop, app, http, gateway, admin_headers)
    loop.run_until_complete(http.aclose())
    loop.run_until_complete(app.state.runtime.db.dispose())
    loop.close()


class PaymentMachine(RuleBasedStateMachine):
    payments = Bundle("payments")

    def __init__(self, h: Harness) -> None:
        super().__init__()
        self.h = h
        self.customer_id = uuid.uuid4()
        self.headers = h.admin  # an admin acts for the machine's fresh customer
        self.first_answers: dict[str, tuple[str, dict, dict]] = {}
        self.last_status: dict[str, str] = {}
        self.refund_status: dict[str, str] = {}
        self.as_of = datetime.now(UTC)
        response = h.run(h.http.post(f"/api/customers/{self.customer_id}/payment_methods", json=card_body(),
                                     headers=self.headers))
        assert response.status_code == 201, response.text

    def _post(self, url: str, body: dict, key: str) -> httpx.Response:
        return self.h.run(self.h.http.post(url, json=body, headers={**self.headers, "Idempotency-Key": key}))

    @rule(target=payments, amount=st.integers(1, 10_000), plan=st.sampled_from(CHARGE_PLANS))
    def charge(self, amount: int, plan: str) -> str:
        self.h.gateway.next_charge = plan
        key = uuid.uuid4().hex
        body = {"customer_id": str(self.customer_id), "amount": amount, "currency": "USD"}
        response = self._post("/api/payments", body, key)
        assert response.status_code == 201, response.text
        payment = response.json()
        assert payment["status"] == EXPECTED_STATUS[plan]
        self.first_answers[payment["id"]] = (key, body, payment)
        self.last_status[payment["id"]] = payment["status"]
        return payment["id"]

    @rule(payment_id=payments)
    def replay(self, payment_id: str) -> None:
        key, body, first = self.first_answers[payment_id]
        response = self._post("/api/payments", body, key)
        assert response.status_code == 201 and response.json() == first

    @rule(payment_id=payments, amount=st.one_of(st.none(), st.integers(1, 12_000)), lost=st.booleans())
    def refund(self, payment_id: str, amount: int | None, lost: bool) -> None:
        before = self.h.run(self.h.http.get(f"/api/payments/{payment_id}", headers=self.headers)).json()
        left = before["amount"] - before["refunded_amount"]
        self.h.gateway.next_refund = "lost" if lost else "ok"
        response = self._post(f"/api/payments/{payment_id}/refunds", {} if amount is None else {"amount": amount},
                              uuid.uuid4().hex)
        if before["status"] != "succeeded" or left == 0:
            assert response.status_code == 409, response.text
        elif amount is not None and amount > left:
            assert response.status_code == 422, response.text
        else:
            assert response.status_code == 201, response.text
            refund = response.json()
            assert refund["amount"] == (left if amount is None else amount)
            assert refund["status"] == ("unknown" if lost else "succeeded")

    @rule()
    def provider_forgets_idempotency_keys(self) -> None:
        self.h.gateway.forget_refund_keys()

    @rule()
    def reconcile(self) -> None:
        self.as_of += timedelta(days=2)
        response = self.h.run(self.h.http.post("/api/payments/reconcile", json={"as_of": self.as_of.isoformat()},
                                               headers=self.h.admin))
        assert response.status_code == 200, response.text

    @invariant()
    def money_and_states_are_consistent(self) -> None:
        if not self.first_answers:
            return
        ids = [uuid.UUID(p) for p in self.first_answers]

        async def load():
            async with self.h.app.state.runtime.db.sessions() as session:
                payments = list(await session.scalars(select(Payment).where(Payment.id.in_(ids))))
                refunds = list(await session.scalars(select(Refund).where(Refund.payment_id.in_(ids))))
            return payments, refunds

        payments, refunds = self.h.run(load())
        gateway = self.h.gateway
        for payment in payments:
            pid = str(payment.id)
            old, new = self.last_status[pid], payment.status
            assert old == new or (old, new) in ALLOWED_TRANSITIONS, f"{old} -> {new}"
            self.last_status[pid] = new
            charged = gateway.charges.get(payment.gateway_idempotency_key)
            if new == "succeeded":
                assert charged is not None and charged.status == "succeeded"
            if charged is None:
                assert new != "succeeded"
            mine = [r for r in refunds if r.payment_id == payment.id]
            reserved = sum(r.amount for r in mine if r.status != "failed")
            done = sum(r.amount for r in mine if r.status == "succeeded")
            assert 0 <= payment.refunded_amount == reserved <= payment.amount
            if payment.gateway_charge_id:
                assert done <= gateway.refunded[payment.gateway_charge_id] <= payment.refunded_amount
        for refund in refunds:
            old = self.refund_status.get(str(refund.id), "pending")
            assert old == refund.status or (old, refund.status) in ALLOWED_TRANSITIONS
            self.refund_status[str(refund.id)] = refund.status


def test_charges_refunds_and_reconciliation_keep_money_and_states_consistent(harness: Harness) -> None:
    run_state_machine_as_test(
        lambda: PaymentMachine(harness),
        settings=settings(
            max_examples=25, stateful_step_count=8, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_a_lost_refund_found_after_the_provider_forgot_its_key_is_settled_not_made_again(harness: Harness) -> None:
    h, customer_id = harness, uuid.uuid4()

    def post(url: str, body: dict) -> httpx.Response:
        response = h.run(h.http.post(url, json=body, headers={**h.admin, "Idempotency-Key": uuid.uuid4().hex}))
        assert response.status_code in (200, 201), response.text
        return response

    post(f"/api/customers/{customer_id}/payment_methods", card_body())
    h.gateway.next_charge = "succeed"
    payment = post("/api/payments", {"customer_id": str(customer_id), "amount": 5000, "currency": "USD"}).json()
    h.gateway.next_refund = "lost"
    refund = post(f"/api/payments/{payment['id']}/refunds", {"amount": 2000}).json()
    assert refund["status"] == "unknown"
    h.gateway.next_refund = "ok"
    h.gateway.forget_refund_keys()  # a day later

    post("/api/payments/reconcile", {"as_of": (datetime.now(UTC) + timedelta(days=2)).isoformat()})

    settled = h.run(h.http.get(f"/api/payments/{payment['id']}", headers=h.admin)).json()
    refunded_at_gateway = h.gateway.refunded[payment["gateway_charge_id"]]
    assert refunded_at_gateway == settled["refunded_amount"] == 2000  # refunded once, not twice
    [listed] = h.run(h.http.get(f"/api/payments/{payment['id']}/refunds", headers=h.admin)).json()["data"]
    assert listed["status"] == "succeeded"
