"""Token verification: strict checks, and a cache that never outlives a token."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from billing_shared import auth, clock
from billing_shared.auth import TokenVerifier, generate_keypair, issue_token
from billing_shared.errors import ApiError

PRIVATE, PUBLIC = generate_keypair()


def token(ttl=timedelta(minutes=5), role="user") -> str:
    return issue_token(PRIVATE, customer_id=uuid.uuid4(), role=role, issuer="iss", audience="aud", ttl=ttl)


def test_verified_token_yields_its_principal():
    principal = TokenVerifier(PUBLIC, "iss", "aud").verify(token(role="admin"))
    assert principal.is_admin


def test_a_token_of_another_key_is_refused_even_with_a_warm_cache():
    verifier = TokenVerifier(PUBLIC, "iss", "aud")
    verifier.verify(token())
    other_private, _ = generate_keypair()
    forged = issue_token(other_private, customer_id=uuid.uuid4(), role="admin", issuer="iss", audience="aud",
                         ttl=timedelta(minutes=5))
    with pytest.raises(ApiError) as err:
        verifier.verify(forged)
    assert err.value.status == 401


def test_cached_token_is_checked_again_once_it_has_expired(monkeypatch):
    verifier = TokenVerifier(PUBLIC, "iss", "aud")
    t = token(ttl=timedelta(seconds=30))
    verifier.verify(t)
    decoded = []
    real_decode = verifier._decode
    monkeypatch.setattr(verifier, "_decode", lambda tok: decoded.append(tok) or real_decode(tok))
    verifier.verify(t)
    assert decoded == []  # served from the cache
    monkeypatch.setattr(auth.clock, "wall_now", lambda: datetime.now(UTC) + timedelta(minutes=1))
    verifier.verify(t)  # the real token is still valid by the wall clock jwt uses; what matters is the re-check
    assert decoded == [t]


def test_tokens_live_in_real_time_whatever_the_business_clock_says():
    clock.set_source(lambda customer_id: datetime(2001, 1, 1, tzinfo=UTC))
    try:
        t = token()
    finally:
        clock.set_source(None)
    assert TokenVerifier(PUBLIC, "iss", "aud").verify(t).role == "user"


@pytest.mark.parametrize("claims", [{"customer_id": 12345}, {"customer_id": ["x"]}, {"role": ["admin"]}],
                         ids=["numeric-customer", "list-customer", "list-role"])
def test_a_signed_token_with_claims_of_the_wrong_type_is_401_not_a_crash(claims):
    now = int(clock.wall_now().timestamp())
    payload = {"customer_id": str(uuid.uuid4()), "role": "user", "iss": "iss", "aud": "aud", "exp": now + 300,
               **claims}
    signed = auth.jwt.encode(payload, PRIVATE, algorithm=auth.ALGORITHM)
    with pytest.raises(ApiError) as err:
        TokenVerifier(PUBLIC, "iss", "aud").verify(signed)
    assert err.value.status == 401


def test_keygen_can_write_the_private_key_apart_from_the_public_one_and_keeps_an_existing_pair(tmp_path):
    private_dir, public_dir = tmp_path / "private", tmp_path / "public"
    private, public = auth.write_keypair(private_dir, public_dir)

    assert (private.parent, public.parent) == (private_dir, public_dir)
    assert sorted(p.name for p in private_dir.iterdir()) == ["jwt_private.pem"]
    assert sorted(p.name for p in public_dir.iterdir()) == ["jwt_public.pem"]
    assert private.stat().st_mode & 0o777 == 0o600
    signed = issue_token(private.read_text(), customer_id=uuid.uuid4(), role="user", issuer="iss", audience="aud",
                         ttl=timedelta(minutes=5))
    assert TokenVerifier(public.read_text(), "iss", "aud").verify(signed).role == "user"
    first_pem = private.read_text()
    assert auth.write_keypair(private_dir, public_dir) == (private, public)  # a second run (a restart)
    assert private.read_text() == first_pem  # kept the pair


def test_a_list_shows_an_admin_what_it_asks_for_and_a_user_its_own_or_404() -> None:
    me, someone = uuid.uuid4(), uuid.uuid4()
    admin, user = auth.Principal(me, "admin"), auth.Principal(me, "user")

    assert (admin.customer_to_list(None), admin.customer_to_list(someone)) == (None, someone)
    assert (user.customer_to_list(None), user.customer_to_list(me)) == (me, me)
    with pytest.raises(ApiError) as refused:
        user.customer_to_list(someone)
    assert (refused.value.status, refused.value.message) == (404, "customer not found")
