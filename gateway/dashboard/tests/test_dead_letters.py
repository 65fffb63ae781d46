"""Each service's dead letters, and a replay button that only a CSRF-checked form can press."""

from __future__ import annotations

import json

import httpx

from .conftest import csrf_of
from .fake_api import SERVICES, FakeApi


async def test_dead_letters_of_every_service_are_listed(admin: httpx.AsyncClient, fake: FakeApi):
    html = (await admin.get("/dashboard/dead-letters")).text
    for service in SERVICES:
        assert f'id="{service}"' in html
        assert ("GET", f"/api/{service}/dead-letters", {"limit": "50"}) in fake.calls
    assert fake.dead_letters["payment"][0]["event_id"] in html and "delivery_limit" in html
    assert 'action="/dashboard/dead-letters/payment/replay"' in html
    assert 'action="/dashboard/dead-letters/customer/replay"' not in html  # nothing to replay there


async def test_replay_all_posts_to_the_service_and_reports_the_count(admin: httpx.AsyncClient, fake: FakeApi):
    page = await admin.get("/dashboard/dead-letters")
    response = await admin.post("/dashboard/dead-letters/payment/replay", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/dead-letters?service=payment&replayed=1#payment"
    assert fake.replays == [("payment", None)]
    after = await admin.get(response.headers["location"])
    assert "Replayed 1 message from the payment dead-letter queue." in after.text


async def test_a_replay_that_kept_letters_back_says_so_and_how_to_replay_them(
    admin: httpx.AsyncClient, fake: FakeApi
):
    fake.too_old["payment"] = [fake.dead_letters["payment"][0]["event_id"]]
    page = await admin.get("/dashboard/dead-letters")
    response = await admin.post("/dashboard/dead-letters/payment/replay", data={"csrf_token": csrf_of(page.text)})
    assert response.headers["location"] == "/dashboard/dead-letters?service=payment&replayed=0&kept=1#payment"
    after = " ".join((await admin.get(response.headers["location"])).text.split())
    assert "Replayed 0 messages from the payment dead-letter queue. Kept back 1: older than" in after
    assert "POST /api/payment/dead-letters/replay?force=true" in after


async def test_replay_one_event_sends_its_id(admin: httpx.AsyncClient, fake: FakeApi):
    event_id = fake.dead_letters["payment"][0]["event_id"]
    page = await admin.get("/dashboard/dead-letters")
    data = {"csrf_token": csrf_of(page.text), "event_id": event_id}
    await admin.post("/dashboard/dead-letters/payment/replay", data=data)
    service, body = fake.replays[0]
    assert service == "payment" and json.loads(body) == [event_id]


async def test_replay_without_csrf_token_is_forbidden_and_replays_nothing(admin: httpx.AsyncClient, fake: FakeApi):
    response = await admin.post("/dashboard/dead-letters/payment/replay", data={})
    assert response.status_code == 403
    wrong = await admin.post("/dashboard/dead-letters/payment/replay", data={"csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert fake.replays == []


async def test_replay_of_an_unknown_service_is_refused(admin: httpx.AsyncClient, fake: FakeApi):
    page = await admin.get("/dashboard/dead-letters")
    response = await admin.post("/dashboard/dead-letters/billing/replay", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 404
    assert fake.replays == []


async def test_anonymous_replay_is_sent_to_sign_in(client: httpx.AsyncClient, fake: FakeApi):
    response = await client.post("/dashboard/dead-letters/payment/replay", data={"csrf_token": "x"})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard/login"
    assert fake.replays == []


async def test_one_service_unreachable_shows_its_queue_unavailable(admin: httpx.AsyncClient, fake: FakeApi):
    fake.broken.add("/api/notifier/dead-letters")
    html = (await admin.get("/dashboard/dead-letters")).text
    section = html[html.index('id="notifier"'):]
    assert "This queue is unavailable" in section
    assert "delivery_limit" in html  # the payment queue is still shown
