"""Operator commands for the subscription service.

    python -m app.cli billing-run [--as-of 2026-03-01T00:00:00Z] [--batch-size 500] [--concurrency 2] [--quiet]
        renew everything due at or before as_of (default now), with a progress bar; prints the summary JSON
    python -m app.cli seed-due --count 100000 [--as-of ...] [--periods-due 1] [--amount 1000] [--currency USD]
        bulk-insert due subscriptions (COPY) for the billing-run benchmark
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime

from pydantic import TypeAdapter, ValidationError
from tqdm import tqdm

from billing_shared import clock
from billing_shared.db import Database

from .bench_support import seed_due
from .service.billing_run import count_due, run_billing
from .settings import Settings


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return number


_INSTANT = TypeAdapter(clock.UtcDatetime)


def _instant(value: str) -> datetime:
    """An instant as the API takes one: with its zone, within the years billing can reach."""
    try:
        return _INSTANT.validate_python(value)
    except ValidationError as error:
        raise argparse.ArgumentTypeError(f"{value!r}: {error.errors()[0]['msg']}") from None


async def billing_run(settings: Settings, as_of: datetime, batch_size: int, concurrency: int, quiet: bool) -> dict:
    db = Database(settings.database_url, settings.schema, producer=settings.service_name, pool_size=concurrency + 1)
    try:
        total = await count_due(db, as_of)
        started = time.perf_counter()
        with tqdm(total=total, unit="sub", desc="billing run", disable=quiet, file=sys.stderr) as bar:
            # The bar counts claims: a subscription due for n periods is claimed n times, so it may pass total.
            summary = await run_billing(
                db, as_of, batch_size=batch_size, concurrency=concurrency, on_progress=bar.update
            )
        elapsed = time.perf_counter() - started
        result = {**summary.as_dict(), "as_of": as_of.isoformat(), "seconds": round(elapsed, 3)}
        result["renewals_per_second"] = round(summary.renewed / elapsed, 1) if elapsed else None
        return result
    finally:
        await db.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("billing-run", help="renew everything due at or before --as-of")
    run.add_argument("--as-of", type=_instant, default=None)
    run.add_argument("--batch-size", type=_positive, default=None)
    run.add_argument("--concurrency", type=_positive, default=None, help="batches at once (default: the setting, 2)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    seed = commands.add_parser("seed-due", help="bulk-insert due subscriptions for the benchmark")
    seed.add_argument("--count", type=int, required=True)
    seed.add_argument("--as-of", type=_instant, default=None)
    seed.add_argument("--periods-due", type=int, default=1)
    seed.add_argument("--amount", type=int, default=1000)
    seed.add_argument("--currency", default="USD")
    args = parser.parse_args(argv)
    # The options override the settings, within the same bounds (a pool of concurrency + 1 connections).
    overrides = {
        "subscription_billing_batch_size": getattr(args, "batch_size", None),
        "subscription_billing_concurrency": getattr(args, "concurrency", None),
    }
    try:
        settings = Settings(**{name: value for name, value in overrides.items() if value is not None})
    except ValidationError as error:
        parser.error("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()))
    now = clock.now()
    as_of = args.as_of or now
    if args.command == "billing-run":
        try:
            clock.check_as_of(as_of, now, settings.subscription_max_as_of_ahead_days)
        except clock.AsOfTooFarAhead as error:
            parser.error(f"--as-of {as_of.isoformat()}: {error} (SUBSCRIPTION_MAX_AS_OF_AHEAD_DAYS)")
        batch, concurrency = settings.subscription_billing_batch_size, settings.subscription_billing_concurrency
        print(json.dumps(asyncio.run(billing_run(settings, as_of, batch, concurrency, args.quiet))))
    else:
        if settings.environment == "production":
            parser.error("seed-due inserts made-up subscriptions for the benchmark; it is refused in production")
        seeded = asyncio.run(
            seed_due(
                settings.database_url,
                args.count,
                as_of,
                periods_due=args.periods_due,
                amount=args.amount,
                currency=args.currency,
            )
        )
        print(json.dumps({"plan_id": str(seeded.plan_id), "count": seeded.count, "anchor": seeded.anchor.isoformat()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
