"""The billing engine as real processes for the benchmark: an isolated stack (own database, vhost, ports)
started the way `make run` starts it, with the benchmark's own SMTP sink in place of the file sink."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from billing_shared import bootstrap
from billing_shared.devstack import Stack, StackConfig, pick_free_base_port
from billing_shared.testing import ADMIN_DSN, create_vhost, vhost_url

from .loadgen import HttpError, HttpPool, expect
from .mailsink import MailSink

CARD = "4242424242424242"  # the mock gateway's always-succeeds card


class BenchSystem:
    """Set up, start and tear down the stack; the API calls the scenarios' set-up needs."""

    def __init__(self, extra_env: dict[str, str] | None = None, workers: dict[str, int] | None = None):
        suffix = f"{time.strftime('%H%M%S')}_{secrets.token_hex(3)}"
        self.database = f"billing_bench_{suffix}"
        self.vhost = f"billing_bench_{suffix}"
        # Made in start(), which stop() undoes: a run interrupted before start() leaves no vhost behind.
        self.amqp_url = vhost_url(self.vhost)
        # Below the ephemeral range and the e2e suite's ports.
        base = pick_free_base_port(10000, 19900, "benchmark")
        self.run_dir = Path(tempfile.mkdtemp(prefix="billing-bench-"))
        self.config = StackConfig(
            run_dir=self.run_dir,
            database=self.database,
            amqp_url=self.amqp_url,
            base_port=base,
            smtp_port=base + 25,
            log_to_files=True,
            workers=dict(workers or {}),
            extra_env={
                "LOG_LEVEL": "WARNING",
                # The benchmark starts billing runs itself; the scheduler must not race it.
                "SUBSCRIPTION_BILLING_INTERVAL_S": "86400",
                "MOCK_GATEWAY_SUCCESS_RATE": "1.0",
                # Invoice emails carry their signed link, not a PDF attachment: rendering a PDF per invoice
                # (WeasyPrint, ~60 ms of CPU each) would make the billing-run step a PDF benchmark.
                "NOTIFIER_INVOICE_API_URL": "",
                **(extra_env or {}),
            },
        )
        self.stack = Stack(self.config)
        self.sink = MailSink(self.config.smtp_port)
        self.base_url = self.config.gateway_url
        self._token: tuple[str, float] | None = None
        self.setup_retries = 0

    # --- lifecycle --------------------------------------------------------------------------

    def start(self, progress=print) -> None:
        create_vhost(self.vhost)
        self.sink.start()
        progress("stack: database, schemas, migrations")
        self.stack.prepare(progress=lambda m: None)
        names = [s.name for s in self.stack.specs() if s.name not in ("smtp-sink", "dashboard")]
        progress(f"stack: starting {', '.join(names)}")
        self.stack.start(names=names, timeout=120)

    def stop(self, keep_logs: Path | None = None) -> None:
        try:
            self.stack.stop()
        finally:
            self.sink.stop()
            if keep_logs is not None and (self.run_dir / "logs").exists():
                keep_logs.mkdir(parents=True, exist_ok=True)
                for log in (self.run_dir / "logs").glob("*.log"):
                    (keep_logs / log.name).write_bytes(log.read_bytes()[-500_000:])
            asyncio.run(bootstrap.drop_database(ADMIN_DSN, self.database))
            subprocess.run(["rabbitmqctl", "-q", "delete_vhost", self.vhost], check=False, capture_output=True)
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def database_dsn(self) -> str:
        """The benchmark database as the Postgres superuser (for seeding and counting)."""
        return bootstrap.with_database(ADMIN_DSN, self.database)

    def service_url(self, service: str) -> str:
        return self.stack.database_url(service)

    # --- API helpers ------------------------------------------------------------------------

    async def admin_headers(self, http: HttpPool) -> dict[str, str]:
        if self._token is None or self._token[1] < time.monotonic():
            response = expect(await http.post(
                "/api/auth/token", headers={"Authorization": f"Bearer {self.stack.admin_key}"}), 200)
            self._token = (response.json()["access_token"], time.monotonic() + 600)
        return {"Authorization": f"Bearer {self._token[0]}"}

    async def new_customer(self, http: HttpPool, label: str, card: bool = True) -> dict[str, Any]:
        headers = await self.admin_headers(http)
        email = f"{label}-{uuid.uuid4().hex[:12]}@bench.example"
        customer = expect(await http.post("/api/customers", json_body={"email": email, "name": f"Bench {label}"},
                                          headers=headers), 201).json()
        if card:
            expect(await http.post(
                f"/api/customers/{customer['id']}/payment_methods",
                json_body={"card_number": CARD, "exp_month": 12, "exp_year": time.gmtime().tm_year + 3, "cvc": "123"},
                headers={**headers, "Idempotency-Key": uuid.uuid4().hex},
            ), 201)
        return customer

    async def new_customers(self, http: HttpPool, label: str, count: int, card: bool = True,
                            concurrency: int = 16) -> list[dict[str, Any]]:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> dict[str, Any]:
            async with semaphore:
                for attempt in range(1, 6):
                    try:
                        return await self.new_customer(http, label, card)
                    except HttpError as exc:
                        # Set-up, not a measurement: ride out a passing 5xx (say, Postgres out of connection
                        # slots on a shared machine); a stray half-made customer is harmless.
                        if attempt == 5 or "status 5" not in str(exc):
                            raise
                        self.setup_retries += 1
                        await asyncio.sleep(0.5 * attempt)
                raise AssertionError("unreachable")

        return list(await asyncio.gather(*(one() for _ in range(count))))
