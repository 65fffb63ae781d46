"""API keys and access tokens: issued once, stored hashed, verified strictly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import text


@pytest.fixture
async def customer(client, admin_headers, unique_email):
    return (await client.post("/api/customers", json={"email": unique_email}, headers=admin_headers)).json()


async def test_api_key_is_shown_once_and_stored_only_as_a_hash(client, customer, service_env):
    user = service_env.auth(customer["id"])
    created = await client.post(f"/api/customers/{customer['id']}/api_keys", json={"name": "ci"}, headers=user)
    assert created.status_code == 201
    key = created.json()["key"]
    listing = (await client.get(f"/api/customers/{customer['id']}/api_keys", headers=user)).json()
    assert [k["id"] for k in listing["data"]] == [created.json()["id"]]
    assert "key" not in listing["data"][0]
    runtime = client._transport.app.state.runtime
    async with runtime.db.sessions() as session:
        dump = await session.scalar(text("SELECT string_agg(api_keys::text, '|') FROM api_keys"))
    assert key not in dump


async def test_api_keys_are_listed_page_by_page_so_every_key_can_be_found_and_revoked(client, customer, service_env):
    user = service_env.auth(customer["id"])
    made = [
        (await client.post(f"/api/customers/{customer['id']}/api_keys", json={"name": f"k{i}"}, headers=user)).json()
        for i in range(5)
    ]
    listed, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/api/customers/{customer['id']}/api_keys", params=params, headers=user)).json()
        listed += [k["id"] for k in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        assert page["has_more"] is (cursor is not None)
        if cursor is None:
            break
    assert (listed, pages) == ([k["id"] for k in made], 3)


async def test_token_exchange_carries_customer_and_role(client, customer, service_env):
    key = (await client.post(f"/api/customers/{customer['id']}/api_keys", headers=service_env.auth(customer["id"]))).json()["key"]
    response = await client.post("/api/auth/token", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] > 0
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["customer_id"] == customer["id"] and claims["role"] == "user"
    me = await client.get(f"/api/customers/{customer['id']}", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


async def test_revoked_or_unknown_key_gets_401(client, customer, service_env):
    user = service_env.auth(customer["id"])
    created = (await client.post(f"/api/customers/{customer['id']}/api_keys", headers=user)).json()
    revoke = await client.delete(f"/api/customers/{customer['id']}/api_keys/{created['id']}", headers=user)
    assert revoke.status_code == 204
    assert (await client.post("/api/auth/token", headers={"Authorization": f"Bearer {created['key']}"})).status_code == 401
    assert (await client.post("/api/auth/token", headers={"Authorization": "Bearer bk_nope"})).status_code == 401
    assert (await client.post("/api/auth/token")).status_code == 401


async def test_no_token_is_401(client, customer):
    response = await client.get(f"/api/customers/{customer['id']}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def _claims(customer_id: str, **overrides) -> dict:
    now = int(time.time())
    claims = {"customer_id": customer_id, "role": "admin", "iss": "billing-customer", "aud": "billing-api",
              "iat": now, "exp": now + 600}
    claims.update(overrides)
    return claims


def _hs256_with_public_key(claims: dict, public_key: str) -> str:
    """The classic key-confusion forgery: HS256 'signed' with the public key as the secret."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(public_key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


async def test_expired_wrong_audience_and_alg_none_tokens_are_401(client, customer, service_env):
    url = f"/api/customers/{customer['id']}"
    expired = service_env.token(customer["id"], "admin", ttl=timedelta(seconds=-30))
    wrong_aud = jwt.encode(_claims(customer["id"], aud="someone-else"), service_env.private_key, algorithm="EdDSA")
    wrong_iss = jwt.encode(_claims(customer["id"], iss="evil"), service_env.private_key, algorithm="EdDSA")
    unsigned = jwt.encode(_claims(customer["id"]), None, algorithm="none")
    forged_hs = _hs256_with_public_key(_claims(customer["id"]), service_env.public_key)
    for token in (expired, wrong_aud, wrong_iss, unsigned, forged_hs, "garbage"):
        response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, token


async def test_a_forged_identity_header_is_ignored(client, customer):
    response = await client.get(
        f"/api/customers/{customer['id']}", headers={"X-Customer-Id": customer["id"], "X-Role": "admin"}
    )
    assert response.status_code == 401


async def test_user_cannot_issue_keys_for_another_customer(client, customer, service_env):
    stranger = service_env.auth(uuid.uuid4())
    response = await client.post(f"/api/customers/{customer['id']}/api_keys", headers=stranger)
    assert response.status_code == 404
