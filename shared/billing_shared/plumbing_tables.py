"""The plumbing tables every service has in its own schema: outbox, inbox, idempotency keys.

Table objects are built per schema (cached), and `create_plumbing_tables` is called from each
service's first Alembic migration.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import BigInteger, Column, DateTime, Identity, Integer, MetaData, String, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB, UUID


def _meta(schema: str) -> MetaData:
    return MetaData(schema=schema)


@lru_cache(maxsize=None)
def outbox_table(schema: str) -> Table:
    return Table(
        "outbox",
        _meta(schema),
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("event_id", UUID(as_uuid=True), nullable=False, unique=True),
        Column("routing_key", String(200), nullable=False),
        Column("body", JSONB, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        Column("last_error", Text),
    )


@lru_cache(maxsize=None)
def inbox_table(schema: str) -> Table:
    return Table(
        "inbox",
        _meta(schema),
        Column("event_id", UUID(as_uuid=True), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("handled_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


@lru_cache(maxsize=None)
def idempotency_table(schema: str) -> Table:
    return Table(
        "idempotency_keys",
        _meta(schema),
        Column("scope", String(200), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("request_hash", String(64), nullable=False),
        Column("status", String(20), nullable=False),  # in_progress | completed
        Column("response_status", Integer),
        Column("response_body", JSONB),
        Column("resource_id", UUID(as_uuid=True)),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


def create_plumbing_tables(op, schema: str) -> None:
    """Create outbox, inbox and idempotency tables (and the outbox NOTIFY trigger) in `schema`."""
    bind = op.get_bind()
    for table in (outbox_table(schema), inbox_table(schema), idempotency_table(schema)):
        table.create(bind)
    op.execute(
        f'CREATE INDEX ix_outbox_unpublished ON "{schema}".outbox (id) WHERE published_at IS NULL'
    )
    op.execute(f'CREATE INDEX ix_idempotency_created ON "{schema}".idempotency_keys (created_at)')
    channel = notify_channel(schema)
    op.execute(
        f"""
        CREATE FUNCTION "{schema}".outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN PERFORM pg_notify('{channel}', ''); RETURN NULL; END $$;
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER outbox_notify AFTER INSERT ON "{schema}".outbox
        FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".outbox_notify();
        """
    )


def drop_plumbing_tables(op, schema: str) -> None:
    op.execute(f'DROP TABLE IF EXISTS "{schema}".outbox, "{schema}".inbox, "{schema}".idempotency_keys')
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".outbox_notify()')
