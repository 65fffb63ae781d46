"""Fault injection on the running stack, and the bookkeeping that proves nothing was lost or doubled.

`SubscribeFlows` starts many subscribe flows at once (as clients would: a 5xx or a dropped connection is
retried with the same Idempotency-Key) and afterwards checks every one of them through the public API,
the mock card provider's own counters and the SMTP sink.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from billing_shared.ids import new_id

from billing_api import TEST_CARDS, BillingApi, gateway_delta, idempotency_key
from sink_mail import distinct_kinds, kinds, wait_mail

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
SUBSCRIBE_MAILS = {"welcome": 1, "invoice_finalized": 1, "invoice_paid": 1}


# --- processes ----------------------------------------------------------------------------------


def restart_many(stack: Any, names: list[str], env: dict[str, str] | None = None, timeout: float = 90) -> None:
    """Stop the processes together, change their environment, start them together, wait until healthy."""
    processes = [stack.stack.processes[name] for name in names]
    for process in processes:
        process.signal(15)
    for process in processes:
        process.stop()
        if env:
            process.spec.env.update(env)
    for process in processes:
        process.start()
    stack.stack.wait_healthy(names, timeout)


def terminate_db_connections(stack: Any) -> int:
    """pg_terminate_backend on every connection to the e2e database; how many were cut."""
    return int(psql(stack, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           f"WHERE datname = '{stack.stack.config.database}' AND pid <> pg_backend_pid()") or 0)


def psql(stack: Any, sql: str) -> str:
    """Run SQL on the e2e database as the superuser; its output (unaligned, tuples only)."""
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", stack.stack.config.database, "-Atc", sql],
                         check=True, capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


class TableLock:
    """Hold a lock on a table from another session (a psql process), so that a service's transactions that write
    to it wait in the middle, until `release` ends that session (and with it the lock)."""

    def __init__(self, stack: Any, table: str, mode: str = "EXCLUSIVE") -> None:
        self.stack, self.table, self.name = stack, table, f"e2e-lock-{uuid.uuid4().hex[:8]}"
        self.process = subprocess.Popen(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", stack.stack.config.database, "-qAtc",
             f"BEGIN; LOCK TABLE {table} IN {mode} MODE; SELECT pg_sleep(300);"],
            env={**os.environ, "PGAPPNAME": self.name}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not self.waiters_and_holder()[1]:
            assert time.monotonic() < deadline, f"the lock on {table} was not taken"
            time.sleep(0.05)

    def waiters_and_holder(self) -> tuple[int, bool]:
        """How many other sessions wait for the table's lock; whether this one holds it."""
        row = psql(self.stack, f"SELECT count(*) FILTER (WHERE NOT l.granted), "
                               f"count(*) FILTER (WHERE l.granted AND a.application_name = '{self.name}') > 0 "
                               f"FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                               f"WHERE l.relation = '{self.table}'::regclass")
        waiting, held = row.split("|")
        return int(waiting), held == "t"

    def release(self) -> None:
        psql(self.stack,
             f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{self.name}'")
        self.process.wait(timeout=30)


async def _publish(amqp_url: str, messages: list[tuple[str, aio_pika.Message]]) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange("billing.events", aio_pika.ExchangeType.TOPIC, durable=True)
        for routing_key, message in messages:
            await exchange.publish(message, routing_key=routing_key)


def publish_raw(stack: Any, routing_key: str, body: bytes, message_id: str, content_type: str = "application/json",
                headers: dict[str, Any] | None = None) -> None:
    """Publish bytes to the events exchange of the e2e vhost, as a broken or foreign producer would."""
    message = aio_pika.Message(body=body, message_id=message_id, type=routing_key, content_type=content_type,
                               delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers=headers or {})
    asyncio.run(_publish(stack.stack.config.amqp_url, [(routing_key, message)]))


def publish_event(stack: Any, event_type: str, payload: dict[str, Any], event_id: str | None = None,
                  headers: dict[str, Any] | None = None) -> str:
    """Publish a well-formed envelope (as some producer's relay would, with a UUIDv7 id); its event id."""
    event_id = event_id or str(new_id())
    envelope = {"event_id": event_id, "type": event_type, "version": 1, "producer": "e2e-test",
                "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "payload": payload}
    publish_raw(stack, event_type, json.dumps(envelope).encode(), event_id, headers=headers)
    return event_id


def save_artifact(name: str, content: Any) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / name).write_text(json.dumps(content, indent=2, default=str) + "\n")


# --- many flows at once -------------------------------------------------------------------------


def post_with_retries(http: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str],
                      attempts: int = 8) -> tuple[httpx.Response, list[str]]:
    """POST like a careful client: the same Idempotency-Key on every retry of a 5xx or a lost connection.
    The response, and what each retried attempt got."""
    headers = {**headers, "Idempotency-Key": headers.get("Idempotency-Key") or idempotency_key()}
    retried: list[str] = []
    for attempt in range(attempts):
        try:
            response = http.post(path, json=body, headers=headers)
            if response.status_code < 500 and response.status_code != 409:
                return response, retried
            retried.append(f"{response.status_code} {response.text[:200]}")
        except httpx.TransportError as exc:
            retried.append(repr(exc))
        time.sleep(0.2 * (attempt + 1))  # client back-off between retries, not a wait for an event
    raise AssertionError(f"POST {path} kept failing: {retried}")


@dataclass
class SubscribeFlows:
    """N customers subscribing at once; afterwards, each must have exactly one paid invoice and its mails."""

    api: BillingApi
    stack: Any
    plan: dict[str, Any]
    customers: list[dict[str, Any]] = field(default_factory=list)
    subscriptions: list[dict[str, Any]] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    gateway_before: dict[str, int] = field(default_factory=dict)

    @classmethod
    def prepare(cls, api: BillingApi, stack: Any, count: int, amount: int = 1000,
                cards: list[str] | None = None, label: str = "Fault") -> "SubscribeFlows":
        plan = api.create_plan(f"{label} plan {uuid.uuid4().hex[:6]}", amount)
        flows = cls(api, stack, plan)
        cards = cards or [TEST_CARDS["ok"]] * count
        flows.customers = [stack.new_customer(f"{label} {i}", card=card) for i, card in enumerate(cards)]
        flows.gateway_before = api.gateway_stats()
        return flows

    def subscribe_all(self, workers: int = 8) -> list[dict[str, Any]]:
        def one(customer: dict[str, Any]) -> dict[str, Any]:
            with self.stack.client() as http:  # one client per thread
                response, retried = post_with_retries(http, "/api/subscriptions",
                                                      {"customer_id": customer["id"], "plan_id": self.plan["id"]},
                                                      customer["headers"])
            self.retried.extend(retried)
            assert response.status_code == 201, response.text
            return response.json()

        with ThreadPoolExecutor(max_workers=workers) as pool:
            self.subscriptions = list(pool.map(one, self.customers))
        return self.subscriptions

    def gateway_charges(self) -> int:
        return gateway_delta(self.gateway_before, self.api.gateway_stats())["charges"]

    def mails_received(self) -> int:
        emails = {c["email"] for c in self.customers}
        return sum(1 for m in self.stack.emails() if str(m["To"]) in emails)

    def assert_all_complete(self, timeout: float = 60, mails_may_repeat: bool = False,
                            only_these_charged: bool = True) -> dict[str, Any]:
        """Every flow finished once: one invoice (paid), one succeeded payment, one gateway charge, its mails.
        (only_these_charged: nobody else was charged meanwhile, so the provider's counters are all theirs.)"""
        api = self.api
        for customer in self.customers:
            api.wait_invoices(customer["id"], 1, "paid", timeout=timeout)
        report: dict[str, Any] = {"flows": len(self.customers), "duplicate_mails": 0, "client_retries": self.retried}
        owed = 0
        for customer, subscription in zip(self.customers, self.subscriptions):
            invoices = api.invoices(customer["id"])
            assert [i["subscription_id"] for i in invoices] == [subscription["id"]], invoices
            succeeded = [p for p in api.payments(customer["id"]) if p["status"] == "succeeded"]
            paid = [(p["invoice_id"], p["amount"]) for p in succeeded]
            assert paid == [(invoices[0]["id"], invoices[0]["total"])], succeeded
            owed += invoices[0]["total"]
            mails = wait_mail(self.stack, customer["email"], SUBSCRIBE_MAILS, timeout=timeout)
            if mails_may_repeat:
                # At-least-once SMTP: a crash between the server's accept and our commit resends the same
                # mail with the same Message-ID; a mail store keeps one. Different mails must not repeat.
                assert distinct_kinds(mails) == Counter(SUBSCRIBE_MAILS), dict(kinds(mails))
                report["duplicate_mails"] += len(mails) - sum(SUBSCRIBE_MAILS.values())
            else:
                assert kinds(mails) == Counter(SUBSCRIBE_MAILS), dict(kinds(mails))
        delta = gateway_delta(self.gateway_before, api.gateway_stats())
        if only_these_charged:  # by the provider's own books: one charge each, for what its invoice asked
            taken = (delta["charges"], delta["refunds"], delta["amount_captured"])
            assert taken == (len(self.customers), 0, owed), delta
        report["gateway"] = delta
        return report


def invoice_numbers_are_gapless(api: BillingApi) -> list[int]:
    """Every numbered invoice in the system: the numbers run 1..N with no gap and no repeat."""
    numbers = sorted(int(re.sub(r"\D", "", i["number"])) for i in api.list_all("/api/invoices") if i["number"])
    assert numbers == list(range(1, len(numbers) + 1)), f"invoice numbers with gaps or repeats: {numbers}"
    return numbers
