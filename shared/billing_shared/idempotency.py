"""Idempotency keys with Stripe's semantics, for POSTs that move money or create billable objects.

Same key + same body → the first response is replayed; same key + another body → 422
`idempotency_error`; the first request still running → the later one waits a little for it and
replays its response, or gets 409 if it is still running. Keys are kept at least 24 hours.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from . import clock
from .db import Database
from .errors import ApiError
from .plumbing_tables import idempotency_table

KEEP_FOR = timedelta(hours=24)
STALE_AFTER = timedelta(seconds=60)


@dataclass
class Claim:
    scope: str
    key: str
    request_hash: str
    replay_status: int | None = None
    replay_body: Any = None
    resource_id: Any = None

    @property
    def is_replay(self) -> bool:
        return self.replay_status is not None


def request_fingerprint(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def validate_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise ApiError(400, "idempotency_key_required", "the Idempotency-Key header is required", field="Idempotency-Key")
    if len(key) > 255:
        raise ApiError(400, "invalid_request", "Idempotency-Key is longer than 255 characters", field="Idempotency-Key")
    return key


class IdempotencyKeys:
    def __init__(self, db: Database, wait_s: float = 10.0, poll_s: float = 0.05):
        self.db = db
        self.table = idempotency_table(db.schema)
        self.wait_s = wait_s
        self.poll_s = poll_s
        t = self.table
        # The hot path's statements, built once (building one costs about as much as running it).
        self._claim_fresh = (
            insert(t)
            .values(
                scope=bindparam("scope"), key=bindparam("key"), request_hash=bindparam("request_hash"),
                status="in_progress", resource_id=bindparam("resource_id", type_=t.c.resource_id.type),
            )
            .on_conflict_do_nothing()
            .returning(t.c.key)
        )
        self._complete = (
            update(t)
            .where(and_(t.c.scope == bindparam("b_scope"), t.c.key == bindparam("b_key")))
            .values(
                status="completed",
                response_status=bindparam("b_status"),
                response_body=bindparam("b_body", type_=t.c.response_body.type),
                updated_at=bindparam("b_at", type_=t.c.updated_at.type),
                resource_id=func.coalesce(bindparam("b_resource_id", type_=t.c.resource_id.type), t.c.resource_id),
            )
        )

    async def claim(self, scope: str, key: str | None, body: Any) -> Claim:
        """Claim the key for this request, or return the replay of the request that claimed it."""
        key = validate_key(key)
        fingerprint = request_fingerprint(body)
        t = self.table
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while True:
            async with self.db.sessions() as session, session.begin():
                inserted = (
                    await session.execute(
                        insert(t)
                        .values(scope=scope, key=key, request_hash=fingerprint, status="in_progress")
                        .on_conflict_do_nothing()
                        .returning(t.c.key)
                    )
                ).first()
                if inserted is not None:
                    return Claim(scope, key, fingerprint)
                row = (
                    await session.execute(select(t).where(and_(t.c.scope == scope, t.c.key == key)))
                ).one_or_none()
                if row is None:
                    continue  # released between our insert and select: try again
                if row.request_hash != fingerprint:
                    raise ApiError(
                        422,
                        "idempotency_error",
                        "this Idempotency-Key was already used with a different request body",
                    )
                if row.status == "completed":
                    return Claim(scope, key, fingerprint, row.response_status, row.response_body, row.resource_id)
                if clock.wall_now() - row.updated_at > STALE_AFTER:
                    # The request that claimed it died; take over (the handler resumes from resource_id).
                    taken = await session.execute(
                        update(t)
                        .where(and_(t.c.scope == scope, t.c.key == key, t.c.updated_at == row.updated_at))
                        .values(updated_at=clock.wall_now())
                    )
                    if taken.rowcount == 1:
                        return Claim(scope, key, fingerprint, resource_id=row.resource_id)
            if asyncio.get_running_loop().time() >= deadline:
                raise ApiError(409, "idempotency_conflict", "a request with this Idempotency-Key is still in progress")
            await asyncio.sleep(self.poll_s)

    async def try_claim(
        self, session: AsyncSession, scope: str, key: str | None, body: Any, resource_id: Any
    ) -> Claim | None:
        """Claim a fresh key inside the caller's transaction, already tied to the resource it will create,
        so the claim and the resource commit (or roll back) together. None if the key exists: then use
        `claim`, which replays, refuses or waits as Stripe does."""
        key = validate_key(key)
        fingerprint = request_fingerprint(body)
        claimed = await session.execute(
            self._claim_fresh, {"scope": scope, "key": key, "request_hash": fingerprint, "resource_id": resource_id}
        )
        if claimed.first() is None:
            return None
        return Claim(scope, key, fingerprint, resource_id=resource_id)

    async def attach_resource(self, session: AsyncSession, claim: Claim, resource_id: Any) -> None:
        """Remember which resource the request created, so a takeover can resume it."""
        t = self.table
        await session.execute(
            update(t)
            .where(and_(t.c.scope == claim.scope, t.c.key == claim.key))
            .values(resource_id=resource_id, updated_at=clock.wall_now())
        )

    async def complete(self, session: AsyncSession, claim: Claim, status: int, body: Any, resource_id: Any = None) -> None:
        """Store the response in the caller's transaction (with the effect it describes)."""
        await session.execute(
            self._complete,
            {"b_scope": claim.scope, "b_key": claim.key, "b_status": status, "b_body": body,
             "b_at": clock.wall_now(), "b_resource_id": resource_id},
        )

    async def release(self, claim: Claim) -> None:
        """Forget a claim whose request failed before doing anything (e.g. invalid input)."""
        t = self.table
        async with self.db.sessions() as session, session.begin():
            await session.execute(
                delete(t).where(and_(t.c.scope == claim.scope, t.c.key == claim.key, t.c.status == "in_progress"))
            )

    async def purge_expired(self, older_than: timedelta = 2 * KEEP_FOR) -> int:
        t = self.table
        async with self.db.sessions() as session, session.begin():
            result = await session.execute(delete(t).where(t.c.created_at < clock.wall_now() - older_than))
            return result.rowcount or 0
