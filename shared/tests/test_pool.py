"""The pool hands out live connections without a round trip per checkout."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from billing_shared import bootstrap, db as db_module
from billing_shared.db import make_engine
from billing_shared.testing import ADMIN_DSN


async def backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


@pytest.fixture
async def engine(database_url: str):
    engine = make_engine(database_url, "plumbing", pool_size=1)
    yield engine
    await engine.dispose()


async def test_a_connection_the_server_terminated_is_replaced_at_checkout_without_an_error(engine, infra) -> None:
    async with engine.connect() as conn:
        pooled = (await conn.get_raw_connection()).driver_connection
        first = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    admin = await asyncpg.connect(bootstrap.with_database(ADMIN_DSN, infra.database))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
    finally:
        await admin.close()
    for _ in range(100):  # until the pooled connection's socket has seen the server's EOF
        if pooled.is_closed():
            break
        await asyncio.sleep(0.05)
    assert pooled.is_closed()

    second = await backend_pid(engine)
    assert second != first


async def test_a_busy_pool_does_not_ping_but_an_idle_connection_is_pinged(engine, monkeypatch) -> None:
    async with engine.connect() as conn:
        adapter = (await conn.get_raw_connection()).dbapi_connection
        pid = int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
    pinged: list[int] = []
    real_ping = type(adapter).ping

    def counting_ping(self) -> None:
        pinged.append(1)
        real_ping(self)

    monkeypatch.setattr(type(adapter), "ping", counting_ping)
    for _ in range(5):
        assert await backend_pid(engine) == pid  # the same pooled connection, checked out again and again
    assert pinged == []  # no round trip per checkout while the connection is in steady use

    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.05)
    await asyncio.sleep(0.1)
    assert await backend_pid(engine) == pid
    assert pinged == [1]  # pinged once after idling, and found alive
