"""Async SQLAlchemy engine on the service's own schema, and the unit of work.

The unit of work is the only place that commits: a state change and the outbox rows announcing it
are written in the same transaction, and it rolls back unless `commit()` was called. Reads that change
nothing take `Database.reads()`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import asyncpg
from sqlalchemy import MetaData, event
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session

from . import clock
from .events import Envelope, Event
from .logs import correlation_id as current_correlation_id
from .plumbing_tables import outbox_table


def make_metadata(schema: str) -> MetaData:
    return MetaData(
        schema=schema,
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        },
    )


def sql_name(table: Any) -> str:
    """A Core table's schema-qualified, quoted name, for SQL written by hand (run on the driver connection)."""
    return f'"{table.schema}"."{table.name}"'


def json_dumps(value: Any) -> str:
    """JSON as the database stores it (compact; dates and ids as strings)."""
    return json.dumps(value, default=str, separators=(",", ":"))


# A pooled connection idle this long is pinged before it is handed out (see _check_on_checkout).
PING_AFTER_IDLE_S = 10.0


def make_engine(database_url: str, schema: str, pool_size: int = 10, max_overflow: int = 0) -> AsyncEngine:
    """A pooled engine whose connections see only the service's schema by default."""
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        # A statement's error never carries its parameters into a log: they hold emails and names.
        hide_parameters=True,
        json_serializer=json_dumps,
        connect_args={"server_settings": {"search_path": schema, "application_name": f"billing-{schema}"}},
    )
    pool = engine.sync_engine.pool
    event.listen(pool, "checkin", _note_idle_since)
    event.listen(pool, "checkout", _check_on_checkout)
    return engine


def _note_idle_since(dbapi_connection: Any, record: Any) -> None:
    if record is not None:
        record.info["idle_since"] = time.monotonic()


def _check_on_checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Hand out live connections without paying a round trip per checkout (pool_pre_ping's asyncpg ping is
    BEGIN, a statement and ROLLBACK: some 15 % of the CPU of a busy flow). A connection the server closed
    (restart, pg_terminate_backend) is known closed to asyncpg once its socket saw EOF; one idle for a while
    (a network path that died silently) is pinged. Raising DisconnectionError makes the pool replace it."""
    if dbapi_connection._connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")
    idle_since = record.info.get("idle_since")
    if idle_since is not None and time.monotonic() - idle_since > PING_AFTER_IDLE_S:
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError(f"pooled connection idle for {PING_AFTER_IDLE_S:g}s failed its ping") from exc


_UNREACHABLE = (
    DisconnectionError,  # a pooled connection found dead at checkout
    ConnectionError,  # refused, reset, aborted
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.AdminShutdownError,  # 57P01: the server is shutting down (or the backend was terminated)
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.CannotConnectNowError,  # 57P03: the server is starting up
)


def database_unreachable(error: BaseException) -> bool:
    """Whether this failure (or one it wraps) says the database could not be reached or dropped the connection
    (refused, reset, shut down or starting up), rather than refusing the statement: nothing about the work
    was wrong, and trying it again once the database is back will do."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, _UNREACHABLE):
            return True
        # Only what it wraps on purpose (SQLAlchemy's `orig`, `raise ... from`): an error raised while handling
        # a lost connection (a bug in that handling, say) is not itself the outage.
        current = getattr(current, "orig", None) or current.__cause__
    return False


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's transaction. The plumbing's own statements (outbox, inbox,
    idempotency keys) run on it: a statement costs about a quarter of the client CPU it takes through
    SQLAlchemy's execute, and these run in every unit of work.

    SQLAlchemy's asyncpg adapter sends BEGIN lazily, with the first statement it runs itself, so it is started
    here first: a statement sent before it would run (and commit) on its own. This reaches into the adapter
    (SQLAlchemy 2.1's `_transaction` / `_start_transaction`, pinned in billing-shared's dependencies);
    test_outbox checks that a unit of work rolled back leaves no outbox row behind."""
    connection = await session.connection()
    pooled = await connection.get_raw_connection()
    adapted = pooled.dbapi_connection
    if adapted._transaction is None:
        await adapted._start_transaction()
    return pooled.driver_connection


@lru_cache(maxsize=None)
def _insert_outbox_sql(schema: str) -> str:
    # One statement for any number of rows (an executemany costs a round of SQLAlchemy work per row).
    return (
        f"INSERT INTO {sql_name(outbox_table(schema))} (event_id, routing_key, body) "
        "SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[])"
    )


class UnitOfWork:
    """One transaction; `emit` queues events into the outbox of the same transaction."""

    def __init__(self, session: AsyncSession, producer: str, schema: str, causation_id: Any = None):
        self.session = session
        self.producer = producer
        self._insert_outbox = _insert_outbox_sql(schema)
        self._pending: list[tuple[Any, str, str]] = []  # (event id, routing key, envelope JSON)
        self.causation_id = causation_id
        self.correlation_id: str | None = current_correlation_id.get()
        self._committed = False

    def emit(self, event: Event, *, occurred_at: Any = None) -> Envelope:
        envelope = Envelope(
            type=event.type,
            version=event.version,
            occurred_at=occurred_at or clock.now(),
            producer=self.producer,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            payload=event.model_dump(mode="json"),
        )
        self._pending.append((envelope.event_id, event.routing_key(), envelope.model_dump_json()))
        return envelope

    def caused_by(self, envelope: Envelope) -> None:
        """Events emitted from now on are caused by this one and share its correlation id (a consumer applying
        several events in one unit of work calls it before each)."""
        self.causation_id = envelope.event_id
        self.correlation_id = envelope.correlation_id

    def emit_all(self, events: Sequence[Event]) -> list[Envelope]:
        return [self.emit(e) for e in events]

    async def driver_connection(self) -> Any:
        return await driver_connection(self.session)

    async def flush_outbox(self) -> None:
        if self._pending:
            event_ids, routing_keys, bodies = zip(*self._pending)
            driver = await self.driver_connection()
            await driver.execute(self._insert_outbox, event_ids, routing_keys, bodies)
            self._pending.clear()

    async def commit(self) -> None:
        await self.flush_outbox()
        await self.session.commit()
        self._committed = True

    async def rollback(self) -> None:
        self._pending.clear()
        await self.session.rollback()


class ReadSession(Session):
    """A session for reads only: each statement runs on its own (autocommit), so a flush would commit at once,
    outside any unit of work; it is refused instead."""


@event.listens_for(ReadSession, "before_flush")
def _refuse_writes(session: Session, flush_context: Any, instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise InvalidRequestError("a read session cannot write: use the unit of work (Database.uow)")


class Database:
    """Engine, session factories and unit-of-work factory for one service.

    `reads()` is for requests and jobs that change nothing. Its statements run without BEGIN and ROLLBACK
    around them (autocommit): two round trips fewer per read, about a quarter of a single-row GET's client CPU.
    The answers are the same as inside a transaction: at READ COMMITTED every statement takes its own snapshot
    either way, and a read takes no locks to hold. `sessions()` keeps a transaction open until it is closed."""

    def __init__(self, database_url: str, schema: str, producer: str, pool_size: int = 10, max_overflow: int = 0):
        self.schema = schema
        self.producer = producer
        self.engine = make_engine(database_url, schema, pool_size, max_overflow)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self.reads = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"),
            expire_on_commit=False,
            sync_session_class=ReadSession,
        )

    def uow(self, causation_id: Any = None) -> "_UowContext":
        return _UowContext(self, causation_id)

    async def dispose(self) -> None:
        await self.engine.dispose()


class _UowContext:
    def __init__(self, db: Database, causation_id: Any):
        self.db = db
        self.causation_id = causation_id
        self.uow: UnitOfWork | None = None

    async def __aenter__(self) -> UnitOfWork:
        session = self.db.sessions()
        self.uow = UnitOfWork(session, self.db.producer, self.db.schema, self.causation_id)
        return self.uow

    async def __aexit__(self, exc_type, exc, tb) -> None:
        assert self.uow is not None
        try:
            if not self.uow._committed:
                await self.uow.rollback()
        finally:
            await self.uow.session.close()
