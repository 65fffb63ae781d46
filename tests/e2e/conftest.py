"""The whole system as real processes, the way `make run` starts it, isolated for this test session.

A fresh database, a fresh RabbitMQ vhost and free ports, so a developer's `make run` can keep running.
Tests drive it only through the gateway's public API and read mail from the SMTP sink's folder.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_api import BillingApi
from billing_shared import bootstrap
from billing_shared.devstack import Stack, StackConfig, pick_free_base_port
from billing_shared.testing import ADMIN_DSN, create_vhost, vhost_url

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

# The services' own settings, tuned so that recovery paths finish within a test's patience: a charge
# whose answer was lost is reconciled after seconds instead of minutes. Business dates still move only
# through the APIs' `as_of`.
E2E_ENV = {
    "LOG_LEVEL": "WARNING",
    "PAYMENT_GATEWAY_TIMEOUT_S": "2",
    # A charge whose outcome is unknown is first checked 8 s later: ample time for a test to pay by hand meanwhile
    # (it does so a moment after it sees the status), however loaded the machine.
    "PAYMENT_RECONCILE_AFTER_S": "8,4,5,10",
    "PAYMENT_PENDING_RECONCILE_AFTER_S": "8",  # > 3 attempts x (2 s + backoff): see payment settings
    "PAYMENT_RECONCILE_INTERVAL_S": "1",
    "RELAY_POLL_INTERVAL_S": "0.5",
    # A message that keeps failing reaches its DLQ in seconds rather than a minute (delivery limit unchanged).
    "REDELIVERY_BACKOFF_S": "0.2",
    "REDELIVERY_BACKOFF_MAX_S": "1",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-profile", choices=("quick", "long"), default="quick",
        help="API fuzzing depth: quick (in `make test`) or long (`make fuzz`)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "time_travel: moves business time for every customer (billing or dunning runs with as_of); runs first"
    )
    config.addinivalue_line(
        "markers", "broker_restart: stops and starts the RabbitMQ app (every vhost on the machine); runs last"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A run with as_of acts on every customer's subscriptions and dunning cases, so it goes first, before other
    # tests have left any behind; the broker restart disturbs everything connected to RabbitMQ, so it goes last.
    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("time_travel"):
            return 0
        return 2 if item.get_closest_marker("broker_restart") else 1

    items.sort(key=rank)




class E2EStack:
    """What the tests see of the running system."""

    def __init__(self, stack: Stack, vhost: str):
        self.stack = stack
        self.vhost = vhost
        self.base_url = stack.config.gateway_url
        self.admin_key = stack.admin_key or ""
        self._admin_token: tuple[str, float] | None = None

    def token_for_key(self, key: str) -> str:
        response = httpx.post(f"{self.base_url}/api/auth/token", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        response.raise_for_status()
        return response.json()["access_token"]

    def admin_headers(self) -> dict[str, str]:
        if self._admin_token is None or self._admin_token[1] < time.monotonic():
            self._admin_token = (self.token_for_key(self.admin_key), time.monotonic() + 600)
        return {"Authorization": f"Bearer {self._admin_token[0]}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30)

    def emails(self, to: str | None = None) -> list[Any]:
        mails = self.stack.emails()
        return [m for m in mails if to is None or to in str(m["To"])]

    def wait_for(self, probe: Callable[[], Any], timeout: float = 30, interval: float = 0.1, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    def new_customer(self, name: str = "E2E Customer", card: str | None = "4242424242424242") -> dict[str, Any]:
        """A customer (with a user API key and, unless card is None, a default card)."""
        with self.client() as http:
            email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
            customer = http.post("/api/customers", json={"email": email, "name": name}, headers=self.admin_headers())
            customer.raise_for_status()
            body = customer.json()
            key = http.post(f"/api/customers/{body['id']}/api_keys", headers=self.admin_headers()).json()["key"]
            body["api_key"] = key
            body["headers"] = {"Authorization": f"Bearer {self.token_for_key(key)}"}
            if card:
                method = http.post(
                    f"/api/customers/{body['id']}/payment_methods",
                    json={"card_number": card, "exp_month": 12, "exp_year": time.gmtime().tm_year + 3, "cvc": "123"},
                    headers=body["headers"],
                )
                method.raise_for_status()
                body["payment_method"] = method.json()
            return body


@pytest.fixture(scope="module")
def api(stack: Any) -> Any:
    """The public API through the gateway, one client per test module."""
    client = BillingApi(stack)
    yield client
    client.close()


@pytest.fixture(scope="session")
def stack() -> Any:
    suffix = f"{time.strftime('%H%M%S')}_{secrets.token_hex(3)}"
    database, vhost = f"billing_e2e_{suffix}", f"billing_e2e_{suffix}"
    amqp_url = vhost_url(vhost)  # made below, inside the try whose finally removes it
    base = pick_free_base_port(20000, 40000, "e2e")
    run_dir = Path(tempfile.mkdtemp(prefix="billing-e2e-"))
    config = StackConfig(
        run_dir=run_dir,
        database=database,
        amqp_url=amqp_url,
        base_port=base,
        smtp_port=base + 25,
        log_to_files=True,
        extra_env=E2E_ENV,
    )
    running = Stack(config)
    try:
        create_vhost(vhost)
        running.prepare(progress=lambda m: None)
        running.start(timeout=120)
        yield E2EStack(running, vhost)
    finally:
        running.stop()
        asyncio.run(bootstrap.drop_database(ADMIN_DSN, database))
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False, capture_output=True)
        logs = run_dir / "logs"
        if logs.exists():
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            for log in logs.glob("*.log"):
                (ARTIFACTS / f"e2e-{log.name}").write_bytes(log.read_bytes()[-200_000:])
        _write_mail_summary(running)
        shutil.rmtree(run_dir, ignore_errors=True)


def _write_mail_summary(running: Stack) -> None:
    """One line per mail the SMTP sink received (recipient, subject, Message-ID), for reading a failure."""
    try:
        lines = [f"{m['To']}\t{m['Subject']}\t{m['Message-ID']}" for m in running.emails()]
    except Exception as exc:  # a summary must never hide the test result
        lines = [f"could not read the mail folder: {exc!r}"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "e2e-mail-summary.tsv").write_text("\n".join(lines) + "\n")
