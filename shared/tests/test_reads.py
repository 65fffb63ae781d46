"""Database.reads(): statements without a transaction around them, no writes, nothing left on the pooled connection."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import registry

from billing_shared.db import Database

from conftest import SCHEMA, effects


class Effect:
    def __init__(self, id: str) -> None:
        self.id = id


registry().map_imperatively(Effect, effects)

TRANSACTION_ID = text("SELECT pg_current_xact_id()::text")


@pytest.fixture
async def one_connection(database_url: str):
    database = Database(database_url, SCHEMA, producer="plumbing", pool_size=1)
    yield database
    await database.dispose()


async def count_effects(db: Database) -> int:
    async with db.reads() as session:
        return int(await session.scalar(select(func.count()).select_from(effects)))


async def test_each_statement_of_a_read_is_its_own_transaction(one_connection: Database) -> None:
    async with one_connection.reads() as session:
        read = [await session.scalar(TRANSACTION_ID) for _ in range(2)]
    async with one_connection.sessions() as session:
        in_a_transaction = [await session.scalar(TRANSACTION_ID) for _ in range(2)]

    assert read[0] != read[1]
    assert in_a_transaction[0] == in_a_transaction[1]


async def test_a_read_session_refuses_to_write(one_connection: Database, clean) -> None:
    async with one_connection.reads() as session:
        session.add(Effect("written-by-a-read"))
        with pytest.raises(InvalidRequestError, match="a read session cannot write"):
            await session.flush()

    assert await count_effects(one_connection) == 0


async def test_the_connection_a_read_used_goes_back_to_transactions(one_connection: Database, clean) -> None:
    await count_effects(one_connection)  # the pool's only connection, in autocommit for this read

    with pytest.raises(RuntimeError):
        async with one_connection.uow() as uow:
            await uow.session.execute(insert(effects).values(id="rolled-back"))
            raise RuntimeError("the unit of work fails after its write")

    assert await count_effects(one_connection) == 0
