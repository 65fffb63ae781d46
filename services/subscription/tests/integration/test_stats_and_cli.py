"""The dashboard's figures, the operator CLI and the in-service scheduler."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from billing_shared.testing import running, wait_for

from app.bench_support import seed_due
from tests.integration.helpers import cancel_plan_subscriptions, create_plan, subscribe

SERVICE_DIR = Path(__file__).resolve().parents[2]


async def stats(client, admin_headers) -> dict:
    response = await client.get("/api/subscriptions/stats", headers=admin_headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_mrr_normalises_to_months_and_rounds_once_half_up(client, admin_headers, customer_id, test_clock):
    test_clock.set(2024, 2, 1)
    before = await stats(client, admin_headers)
    monthly = await create_plan(client, admin_headers, amount=1000, currency="CHF")
    yearly = await create_plan(client, admin_headers, amount=12006, currency="CHF", interval="year")  # 1000.5 a month
    quarterly = await create_plan(client, admin_headers, amount=3000, currency="CHF", interval_count=3)
    trial = await create_plan(client, admin_headers, amount=99999, currency="CHF", trial_days=30)
    for plan in (monthly, yearly, quarterly, trial):
        await subscribe(client, admin_headers, customer_id, plan["id"])
    after = await stats(client, admin_headers)
    chf = {m["currency"]: m["amount"] for m in after["mrr"]}["CHF"]
    assert chf - {m["currency"]: m["amount"] for m in before["mrr"]}.get("CHF", 0) == 3001  # 1000 + 1000.5 + 1000
    assert after["counts"]["active"] - before["counts"]["active"] == 3
    assert after["counts"]["trialing"] - before["counts"]["trialing"] == 1
    assert set(after["counts"]) == {"trialing", "active", "past_due", "paused", "suspended", "canceled"}


async def test_stats_are_for_admins(client, user_headers):
    assert (await client.get("/api/subscriptions/stats", headers=user_headers)).status_code == 403


def cli(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=SERVICE_DIR, env=os.environ.copy(),
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


async def test_cli_seeds_due_subscriptions_and_bills_them(db, service_env):
    seeded = await asyncio.to_thread(cli, "seed-due", "--count", "40", "--as-of", "1999-06-01T00:00:00Z", "--periods-due", "2")
    try:
        assert seeded["count"] == 40
        summary = await asyncio.to_thread(cli, "billing-run", "--as-of", "1999-06-01T00:00:00Z", "--batch-size", "7")
        assert summary["renewed"] == 80 and summary["failed"] == 0 and summary["renewals_per_second"] > 0
        again = await asyncio.to_thread(cli, "billing-run", "--as-of", "1999-06-01T00:00:00Z", "--quiet")
        assert again["renewed"] == 0
    finally:
        await cancel_plan_subscriptions(db, seeded["plan_id"])


async def test_the_scheduler_renews_what_is_due_now(service_env, db, test_clock):
    from app.main import create_app
    from app.settings import Settings

    test_clock.set(1998, 6, 1)
    seeded = await seed_due(service_env.database_url("subscription"), 5, datetime(1998, 6, 1, tzinfo=UTC))
    settings = Settings(run_relay=False, run_consumer=False, run_scheduler=True, subscription_billing_interval_s=0.05)
    try:
        async with running(create_app(settings)):

            async def renewed() -> bool:
                async with db.sessions() as session:
                    count = await session.scalar(
                        text("SELECT count(*) FROM subscription_periods WHERE plan_id = :p AND period_index = 1"),
                        {"p": seeded.plan_id},
                    )
                return count == 5

            await wait_for(renewed, message="the scheduler to renew the due subscriptions")
    finally:
        await cancel_plan_subscriptions(db, seeded.plan_id)


@pytest.mark.parametrize("option", ["--batch-size", "--concurrency"])
def test_cli_refuses_a_batch_size_or_concurrency_below_one(service_env, option):
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "billing-run", option, "0"], cwd=SERVICE_DIR, env=os.environ.copy(),
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert f"argument {option}: 0 is not a positive number" in done.stderr


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args], cwd=SERVICE_DIR, env={**os.environ, **env},
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        # A typo for 2026 would bill every subscription for each month up to 2062: the API's horizon applies.
        (["--as-of", "2062-03-01T00:00:00Z"], "may be at most"),
        (["--as-of", "9999-12-31T23:00:00-05:00"], "must be between"),
        (["--as-of", "2026-03-01T00:00:00"], "timezone"),
        # Each batch at once holds a pool connection: the settings' bounds apply to the options too.
        (["--concurrency", "9"], "subscription_billing_concurrency"),
        (["--batch-size", "5001"], "subscription_billing_batch_size"),
    ],
)
def test_cli_billing_run_refuses_what_the_api_would(service_env, args, says):
    done = run_cli("billing-run", *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_refuses_to_seed_made_up_subscriptions_in_production(service_env):
    done = run_cli("seed-due", "--count", "5", ENVIRONMENT="production")
    assert done.returncode == 2, done.stderr
    assert "refused in production" in done.stderr
