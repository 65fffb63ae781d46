"""`make admin-key`: a fresh admin API key that works for the token exchange."""

from __future__ import annotations

from app.cli import issue_admin_key
from app.settings import Settings


async def test_admin_key_exchanges_for_an_admin_token(client, service_env):
    key = await issue_admin_key(Settings())
    second = await issue_admin_key(Settings())
    assert key != second
    token = (await client.post("/api/auth/token", headers={"Authorization": f"Bearer {key}"})).json()["access_token"]
    listing = await client.get("/api/customers", headers={"Authorization": f"Bearer {token}"})
    assert listing.status_code == 200
