"""Idempotency keys with Stripe's semantics, for POSTs that move money or create billable objects.

Same key + same body → the first response is replayed; same key + another body → 422
`idempotency_error`; the first request still running → the later one waits a little for it and
replays its response, or gets 409 if it is still running. Keys are kept at least 24 hours.

A claim in progress for longer than STALE_AFTER is taken over by the next request with its key. Each claim
carries the key's `updated_at` as it left it, as an ownership token: the request whose claim was taken over
can no longer complete, attach to or release it (`ClaimLost`), so only one of them settles the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from . import clock
from .db import Database, driver_connection, json_dumps, sql_name
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
    token: datetime | None = None  # the key's updated_at as this request left it; None for a replay

    @property
    def is_replay(self) -> bool:
        return self.replay_status is not None


class ClaimLost(ApiError):
    """The request's claim was taken over (it ran past STALE_AFTER) or is gone: it must not settle the key."""

    def __init__(self) -> None:
        super().__init__(
            409,
            "idempotency_conflict",
            "another request with this Idempotency-Key took it over while this one was running; "
            "retry to get its response",
        )


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
        # The hot path's statements, run on the caller's driver connection (see billing_shared.db).
        table = sql_name(self.table)
        self._claim_fresh = (
            f"INSERT INTO {table} (scope, key, request_hash, status, resource_id) "
            "VALUES ($1, $2, $3, 'in_progress', $4) ON CONFLICT DO NOTHING RETURNING updated_at"
        )
        self._complete = (
            f"UPDATE {table} SET status = 'completed', response_status = $3, response_body = $4::jsonb, "
            "updated_at = $5, resource_id = coalesce($6, resource_id) "
            "WHERE scope = $1 AND key = $2 AND status = 'in_progress' AND updated_at = $7"
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
                        .returning(t.c.updated_at)
                    )
                ).first()
                if inserted is not None:
                    return Claim(scope, key, fingerprint, token=inserted.updated_at)
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
                    # The request that claimed it died; take over (the handler resumes from resource_id). The new
                    # updated_at is the new owner's token: the old owner, if it is only slow, has lost the claim.
                    token = clock.wall_now()
                    taken = await session.execute(
                        update(t)
                        .where(and_(t.c.scope == scope, t.c.key == key, t.c.updated_at == row.updated_at))
                        .values(updated_at=token)
                    )
                    if taken.rowcount == 1:
                        return Claim(scope, key, fingerprint, resource_id=row.resource_id, token=token)
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
        driver = await driver_connection(session)
        token = await driver.fetchval(self._claim_fresh, scope, key, fingerprint, resource_id)
        if token is None:
            return None
        return Claim(scope, key, fingerprint, resource_id=resource_id, token=token)

    async def attach_resource(self, session: AsyncSession, claim: Claim, resource_id: Any) -> None:
        """Remember which resource the request created, so a takeover can resume it (and keep the claim fresh).

        ClaimLost if another request took the claim over: the caller's transaction must not commit its resource.
        The claim's token moves on with the key's updated_at (if that transaction rolls back, this request can no
        longer release the key: it goes stale and is taken over, which is safe).
        """
        t = self.table
        token = clock.wall_now()
        attached = await session.execute(
            update(t)
            .where(and_(*self._owned(claim)))
            .values(resource_id=resource_id, updated_at=token)
        )
        if attached.rowcount != 1:
            raise ClaimLost()
        claim.token = token

    async def complete(self, session: AsyncSession, claim: Claim, status: int, body: Any, resource_id: Any = None) -> None:
        """Store the response in the caller's transaction (with the effect it describes).

        ClaimLost if another request took the claim over: the caller's transaction must not commit its effect.
        """
        await self.complete_json(session, claim, status, json_dumps(body), resource_id)

    async def complete_json(
        self, session: AsyncSession, claim: Claim, status: int, body_json: str, resource_id: Any = None
    ) -> None:
        """`complete` with the response body already serialised (the JSON text the client is sent)."""
        driver = await driver_connection(session)
        done = await driver.execute(
            self._complete, claim.scope, claim.key, status, body_json, clock.wall_now(), resource_id, claim.token
        )
        if done != "UPDATE 1":
            raise ClaimLost()

    async def release(self, claim: Claim) -> bool:
        """Forget a claim whose request failed before doing anything (e.g. invalid input). False, and nothing is
        deleted, if another request took the claim over: its own work goes on under the key."""
        async with self.db.sessions() as session, session.begin():
            released = await session.execute(delete(self.table).where(and_(*self._owned(claim))))
        return released.rowcount == 1

    def _owned(self, claim: Claim) -> tuple:
        t = self.table
        return (
            t.c.scope == claim.scope,
            t.c.key == claim.key,
            t.c.status == "in_progress",
            t.c.updated_at == claim.token,
        )
