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
