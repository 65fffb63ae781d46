"""The ceiling's minimal hop: HTTP → one transaction with an outbox row → one confirmed publish → a consumer
writing one row, built from the same billing_shared plumbing as the services (uvicorn --factory bench.hop_app:create_app).

    python -m bench.hop_app setup <database_url>   create the `benchhop` schema (plumbing tables + hop_done)
"""

from __future__ import annotations

import asyncio
import sys
from typing import ClassVar

from fastapi import APIRouter, Request
from sqlalchemy import Column, DateTime, MetaData, Table, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.ext.asyncio import create_async_engine

from billing_shared.consumer import batchable
from billing_shared.db import UnitOfWork
from billing_shared.events import Envelope, Event
from billing_shared.plumbing_tables import create_plumbing_tables
from billing_shared.settings import ServiceSettings
from billing_shared.web import create_service_app

SCHEMA = "benchhop"

hop_done = Table(
    "hop_done",
    MetaData(schema=SCHEMA),
    Column("event_id", UUID(as_uuid=True), primary_key=True),
    Column("done_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


class HopSettings(ServiceSettings):
    service_name: ClassVar[str] = SCHEMA


class HopRequested(Event):
    """Not in the catalog: the benchmark's own event."""

    type: ClassVar[str] = "benchhop.requested"
    n: int


router = APIRouter()


@router.post("/hop", status_code=202)
async def create_hop(request: Request, n: int = 0) -> dict[str, str]:
    async with request.app.state.runtime.db.uow() as uow:
        envelope = uow.emit(HopRequested(n=n))
        await uow.commit()
    return {"event_id": str(envelope.event_id)}


@batchable  # as the services' database-only handlers are
async def handle_hop_requested(envelope: Envelope, uow: UnitOfWork) -> None:
    await uow.session.execute(hop_done.insert().values(event_id=envelope.event_id))


def create_app(settings: HopSettings | None = None):
    settings = settings or HopSettings()
    return create_service_app(
        settings, title="Benchmark hop", routers=[router], handlers={HopRequested.type: handle_hop_requested}
    )


class _Op:
    """Just enough of Alembic's `op` for create_plumbing_tables."""

    def __init__(self, connection):
        self.connection = connection

    def get_bind(self):
        return self.connection

    def execute(self, sql: str) -> None:
        self.connection.execute(text(sql))


async def setup_schema(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA IF EXISTS "{SCHEMA}" CASCADE'))
            await conn.execute(text(f'CREATE SCHEMA "{SCHEMA}"'))
            await conn.run_sync(lambda sync: create_plumbing_tables(_Op(sync), SCHEMA))
            await conn.run_sync(lambda sync: hop_done.create(sync))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "setup":
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(setup_schema(sys.argv[2]))
