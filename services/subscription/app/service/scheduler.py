"""The periodic billing run inside the service (only where run_scheduler is set; safe on every replica)."""

from __future__ import annotations

import asyncio
import logging

from billing_shared import clock
from billing_shared.db import Database

from .billing_run import run_billing

log = logging.getLogger(__name__)


async def run_periodically(db: Database, interval_s: float, batch_size: int, concurrency: int) -> None:
    """Every interval, renew what is due now and resume what should resume; errors never stop the loop."""
    while True:
        try:
            summary = await run_billing(db, clock.now(), batch_size=batch_size, concurrency=concurrency)
            if summary.renewed or summary.ended or summary.resumed or summary.failed:
                log.info("billing run: %s", summary.as_dict())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduled billing run failed; trying again next interval")
        await asyncio.sleep(interval_s)
