"""Fixtures for the plumbing tests: a scratch service schema with the outbox/inbox tables."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, MetaData, String, Table, text
from sqlalchemy.ext.asyncio import create_async_engine

from billing_shared import bootstrap
from billing_shared.db import Database
from billing_shared.plumbing_tables import create_plumbing_tables
from billing_shared.testing import ADMIN_DSN, TestInfra

pytest_plugins = ["billing_shared.testing"]

SCHEMA = "plumbing"
effects = Table("effects", MetaData(schema=SCHEMA), Column("id", String(64), primary_key=True))


@pytest.fixture(scope="session")
async def database_url(infra: TestInfra) -> str:
    admin = bootstrap.with_database(ADMIN_DSN, infra.database)
    conn = await asyncpg.connect(admin)
    await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    await conn.close()
    url = admin.replace("postgresql://", "postgresql+asyncpg://", 1)
    engine = create_async_engine(url)
    async with engine.begin() as c:
        await c.run_sync(lambda sync: create_plumbing_tables(Operations(MigrationContext.configure(sync)), SCHEMA))
        await c.run_sync(lambda sync: effects.create(sync))
    await engine.dispose()
    return url


@pytest.fixture(scope="session")
async def db(database_url: str):
    database = Database(database_url, SCHEMA, producer="plumbing")
    yield database
    await database.dispose()


@pytest.fixture
async def clean(db: Database):
    async with db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {SCHEMA}.outbox, {SCHEMA}.inbox, {SCHEMA}.effects"))


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:8]
