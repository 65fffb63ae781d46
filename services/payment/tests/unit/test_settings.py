"""Payment settings: the reconcile schedule from one env var, and no local fingerprint key in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import LOCAL_FINGERPRINT_KEY, Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENVIRONMENT", "PAYMENT_FINGERPRINT_KEY", "PAYMENT_RECONCILE_AFTER_S", "PAYMENT_GATEWAY_URL"):
        monkeypatch.delenv(name, raising=False)


def test_reconcile_schedule_reads_comma_separated_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYMENT_RECONCILE_AFTER_S", "60, 600,6000")
    assert Settings().payment_reconcile_after_s == [60, 600, 6000]
    assert Settings(payment_reconcile_after_s="5").payment_reconcile_after_s == [5]


@pytest.mark.parametrize("schedule", ["", "soon", "-1,5"])
def test_a_bad_reconcile_schedule_is_refused(monkeypatch: pytest.MonkeyPatch, schedule: str) -> None:
    monkeypatch.setenv("PAYMENT_RECONCILE_AFTER_S", schedule)
    with pytest.raises(ValidationError):
        Settings()


def test_local_defaults_work_outside_production() -> None:
    settings = Settings()
    assert settings.payment_gateway_url == "http://127.0.0.1:8090"
    assert settings.payment_fingerprint_key == LOCAL_FINGERPRINT_KEY


def test_production_refuses_the_local_fingerprint_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="PAYMENT_FINGERPRINT_KEY"):
        Settings()
    monkeypatch.setenv("PAYMENT_FINGERPRINT_KEY", "a-real-secret")
    assert Settings().fingerprint_key == b"a-real-secret"


def test_a_pending_payment_is_not_reconciled_while_its_gateway_call_may_still_answer() -> None:
    with pytest.raises(ValidationError, match="PAYMENT_PENDING_RECONCILE_AFTER_S"):
        Settings(payment_gateway_timeout_s=30, payment_pending_reconcile_after_s=20)
    # Each of the attempts (a broken connection is tried again) may take the whole timeout.
    with pytest.raises(ValidationError, match="PAYMENT_GATEWAY_ATTEMPTS"):
        Settings(payment_gateway_timeout_s=30, payment_gateway_attempts=3, payment_pending_reconcile_after_s=60)
    assert Settings(payment_gateway_timeout_s=30, payment_gateway_attempts=1,
                    payment_pending_reconcile_after_s=60).payment_gateway_attempts == 1


@pytest.mark.parametrize(("prefetch", "pool_size", "overflow"), [(8, 4, 4), (6, 5, 5), (3, 2, 3)])
def test_a_prefetch_whose_charges_could_starve_the_pool_is_refused(prefetch: int, pool_size: int, overflow: int) -> None:
    # Each in-flight charge holds two connections: 2 x prefetch must fit in the pool.
    with pytest.raises(ValidationError, match="PREFETCH=.*starve the database pool"):
        Settings(prefetch=prefetch, db_pool_size=pool_size, db_max_overflow=overflow)


def test_the_default_prefetch_fits_the_default_pool_and_an_api_only_replica_ignores_it() -> None:
    settings = Settings(db_pool_size=5, db_max_overflow=5)
    assert 2 * settings.prefetch <= settings.db_pool_size + settings.db_max_overflow
    assert Settings(prefetch=8, db_pool_size=8, db_max_overflow=8).prefetch == 8
    assert Settings(run_consumer=False, db_pool_size=2, db_max_overflow=0).db_pool_size == 2
