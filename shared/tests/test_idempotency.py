"""Idempotency keys, Stripe's way: replay, conflict on another body, wait-then-replay on concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from billing_shared import clock
from billing_shared.errors import ApiError
from billing_shared.idempotency import IdempotencyKeys
from billing_shared.testing import wait_for


async def test_same_key_same_body_replays_the_first_response(db, unique):
    keys = IdempotencyKeys(db)
    claim = await keys.claim("cust", unique, {"amount": 100})
    assert not claim.is_replay
    async with db.sessions() as s, s.begin():
        await keys.complete(s, claim, 201, {"id": "p1"})
    replay = await keys.claim("cust", unique, {"amount": 100})
    assert replay.is_replay and replay.replay_status == 201 and replay.replay_body == {"id": "p1"}


async def test_same_key_other_body_is_an_idempotency_error(db, unique):
    keys = IdempotencyKeys(db)
    await keys.claim("cust", unique, {"amount": 100})
    with pytest.raises(ApiError) as err:
        await keys.claim("cust", unique, {"amount": 999})
    assert err.value.status == 422 and err.value.code == "idempotency_error"


async def test_keys_are_scoped_per_caller(db, unique):
    keys = IdempotencyKeys(db)
    await keys.claim("alice", unique, {"amount": 1})
    assert not (await keys.claim("bob", unique, {"amount": 2})).is_replay


class LooksCounted:
    """The database, counting the sessions each task opens: a claim opens one for each look at its key."""

    def __init__(self, db):
        self.db = db
        self.opened: Counter[asyncio.Task] = Counter()

    def __getattr__(self, name: str):
        return getattr(self.db, name)

    def sessions(self):
        self.opened[asyncio.current_task()] += 1
        return self.db.sessions()


async def test_concurrent_requests_wait_for_the_first_and_replay_it(db, unique):
    keys = IdempotencyKeys(db, wait_s=5)
    first = await keys.claim("cust", unique, {"n": 1})
    # The first claim has committed its key, in progress: the others do not block on a lock, they look again
    # every poll_s until it is completed.
    keys.db = looks = LooksCounted(db)
    claims = [asyncio.create_task(keys.claim("cust", unique, {"n": 1})) for _ in range(10)]

    async def every_claim_found_the_key_in_progress_and_waits() -> bool:
        return all(looks.opened[claim] >= 2 and not claim.done() for claim in claims)

    try:
        await wait_for(every_claim_found_the_key_in_progress_and_waits, message="the claims waiting on the first")
        async with db.sessions() as s, s.begin():
            await keys.complete(s, first, 201, {"id": "done"})
        replays = await asyncio.gather(*claims)
    finally:
        for claim in claims:
            claim.cancel()  # those still waiting, if the test failed
        await asyncio.gather(*claims, return_exceptions=True)
    assert all(r.is_replay and r.replay_body == {"id": "done"} for r in replays)


async def test_still_running_after_the_wait_is_409(db, unique):
    keys = IdempotencyKeys(db, wait_s=0.2)
    await keys.claim("cust", unique, {"n": 1})
    with pytest.raises(ApiError) as err:
        await keys.claim("cust", unique, {"n": 1})
    assert err.value.status == 409


async def test_missing_key_is_400(db):
    with pytest.raises(ApiError) as err:
        await IdempotencyKeys(db).claim("cust", None, {})
    assert err.value.status == 400


async def test_released_claim_can_be_retried(db, unique):
    keys = IdempotencyKeys(db)
    claim = await keys.claim("cust", unique, {"n": 1})
    await keys.release(claim)
    assert not (await keys.claim("cust", unique, {"n": 2})).is_replay


def five_minutes_later(monkeypatch) -> None:
    """From now on the wall clock reads five minutes on: every claim in progress so far is stale."""
    monkeypatch.setattr(clock, "wall_now", lambda: datetime.now(UTC) + timedelta(minutes=5))


async def test_a_takeover_survives_the_first_owner_releasing_the_key(db, unique, monkeypatch):
    keys = IdempotencyKeys(db, wait_s=0.2)
    slow = await keys.claim("cust", unique, {"n": 1})
    five_minutes_later(monkeypatch)
    taken = await keys.claim("cust", unique, {"n": 1})  # the slow request looks dead: this one takes over
    assert not taken.is_replay
    # The slow request fails at last: its release must not free the key the new owner is working under.
    await keys.release(slow)
    with pytest.raises(ApiError) as err:
        await keys.claim("cust", unique, {"n": 1})
    assert err.value.status == 409  # still the new owner's, in progress: a third request does not run again
    async with db.sessions() as s, s.begin():
        await keys.complete(s, taken, 201, {"id": "new owner"})
    replay = await keys.claim("cust", unique, {"n": 1})
    assert replay.is_replay and replay.replay_body == {"id": "new owner"}


async def test_the_first_owner_cannot_complete_a_key_taken_over(db, unique, monkeypatch):
    keys = IdempotencyKeys(db)
    async with db.sessions() as s, s.begin():  # claimed on the hot path, in the request's own transaction
        slow = await keys.try_claim(s, "cust", unique, {"n": 1}, resource_id=None)
    assert slow is not None
    five_minutes_later(monkeypatch)
    taken = await keys.claim("cust", unique, {"n": 1})
    assert not taken.is_replay
    # The slow request finishes while the new owner is still working: it may neither attach nor complete.
    for settle in (
        lambda s: keys.attach_resource(s, slow, uuid.uuid4()),
        lambda s: keys.complete_json(s, slow, 201, '{"id": "first owner"}'),
    ):
        with pytest.raises(ApiError) as err:
            async with db.sessions() as s, s.begin():
                await settle(s)
        assert err.value.status == 409 and err.value.code == "idempotency_conflict"
    resource_id = uuid.uuid4()
    async with db.sessions() as s, s.begin():
        await keys.attach_resource(s, taken, resource_id)
    async with db.sessions() as s, s.begin():
        await keys.complete(s, taken, 201, {"id": "new owner"})
    replay = await keys.claim("cust", unique, {"n": 1})
    assert replay.is_replay and replay.replay_body == {"id": "new owner"} and replay.resource_id == resource_id


async def test_the_first_owner_cannot_overwrite_the_new_owners_response(db, unique, monkeypatch):
    keys = IdempotencyKeys(db)
    slow = await keys.claim("cust", unique, {"n": 1})
    five_minutes_later(monkeypatch)
    taken = await keys.claim("cust", unique, {"n": 1})
    async with db.sessions() as s, s.begin():
        await keys.complete(s, taken, 201, {"id": "new owner"})
    with pytest.raises(ApiError):
        async with db.sessions() as s, s.begin():
            await keys.complete(s, slow, 201, {"id": "first owner"})
    assert await keys.release(slow) is False
    replay = await keys.claim("cust", unique, {"n": 1})
    assert replay.is_replay and replay.replay_body == {"id": "new owner"}
