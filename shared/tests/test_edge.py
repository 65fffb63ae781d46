"""The edge middleware keeps a well-formed client correlation id and replaces any other (it goes into every event
the request emits, as an AMQP short string of at most 255 bytes)."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from billing_shared.logs import correlation_id
from billing_shared.web import install_observability


def app() -> FastAPI:
    application = FastAPI()
    install_observability(application, "edge-test")

    @application.get("/cid")
    async def read_cid() -> dict[str, str | None]:
        return {"cid": correlation_id.get()}

    return application


async def seen_and_echoed(sent: bytes) -> tuple[str, str]:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
        response = await client.get("/cid", headers={"X-Correlation-Id": sent})
    assert response.status_code == 200
    return response.json()["cid"], response.headers["x-correlation-id"]


async def test_a_well_formed_correlation_id_is_kept_and_echoed() -> None:
    assert await seen_and_echoed(b"req-42.abc:7") == ("req-42.abc:7", "req-42.abc:7")


@pytest.mark.parametrize(
    "sent", [b"\xe9" * 128, b"a" * 129, b"with space", b""], ids=["latin1", "long", "space", "empty"]
)
async def test_any_other_is_replaced_by_a_fresh_id_that_is_echoed(sent: bytes) -> None:
    seen, echoed = await seen_and_echoed(sent)
    assert re.fullmatch(r"[0-9a-f]{32}", seen) and echoed == seen
