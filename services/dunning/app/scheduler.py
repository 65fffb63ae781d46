"""The dunning scheduler: emits dunning.retry_due for retries due by `as_of`, safely on any number of replicas.

Each batch is claimed with FOR UPDATE SKIP LOCKED and, in the same transaction, its retry slots are
cleared and the dispatched attempts recorded (unique per case and attempt number), so a retry is
announced exactly once however many schedulers run. Hard-declined cases whose wait for a new
payment method ran out are exhausted here too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from billing_shared import clock
from billing_shared.db import Database

from . import operations
from .db import repository

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    retries_due: int = 0
    exhausted: int = 0


async def run_due(db: Database, as_of: datetime, batch_size: int = 200) -> RunResult:
    """Dispatch every retry due by `as_of` and exhaust expired waits, one batch per transaction."""
    as_of = clock.ensure_utc(as_of)
    result = RunResult()
    while True:
        async with db.uow() as uow:
            cases = await repository.claim_due(uow.session, as_of, batch_size)
            for case in cases:
                assert case.next_retry_at is not None
                if await operations.dispatch_retry(
                    uow, case, case.next_retry_at, trigger="schedule", dispatched_at=as_of
                ):
                    result.retries_due += 1
            await uow.commit()
        if len(cases) < batch_size:
            break
    while True:
        async with db.uow() as uow:
            cases = await repository.claim_expired_waits(uow.session, as_of, batch_size)
            for case in cases:
                operations.exhaust(uow, case, case.wait_until or as_of)
                result.exhausted += 1
            await uow.commit()
        if len(cases) < batch_size:
            break
    return result


async def run_periodically(db: Database, interval_s: float, batch_size: int) -> None:
    """The background loop of a replica; a failed run is logged and tried again next tick."""
    while True:
        try:
            result = await run_due(db, clock.now(), batch_size)
            if result.retries_due or result.exhausted:
                log.info("dunning run: %d retries due, %d cases exhausted", result.retries_due, result.exhausted)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dunning run failed; trying again in %.0f s", interval_s)
        await asyncio.sleep(interval_s)
