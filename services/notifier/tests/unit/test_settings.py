"""Notifier settings: the local defaults work outside production; production refuses an SMTP login without TLS
and a sender at example.com."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import LOCAL_SENDER, Settings

MAIL_VARIABLES = (
    "ENVIRONMENT", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_USE_TLS", "SMTP_START_TLS",
    "NOTIFIER_SENDER",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in MAIL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("environment", ["local", "test"])
def test_the_local_defaults_work_outside_production(monkeypatch: pytest.MonkeyPatch, environment: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    settings = Settings()
    assert settings.notifier_sender == LOCAL_SENDER == "billing@example.com"
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_username) == ("127.0.0.1", 1025, None)
    # A local sink that wants a login over plain SMTP is fine outside production.
    monkeypatch.setenv("SMTP_USERNAME", "sink")
    monkeypatch.setenv("SMTP_PASSWORD", "sink")
    assert Settings().smtp_password == "sink"


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("NOTIFIER_SENDER", "Acme Billing <billing@acme.test>")
    return monkeypatch


@pytest.mark.parametrize("credential", ["SMTP_USERNAME", "SMTP_PASSWORD"])
def test_production_refuses_an_smtp_login_without_tls(production: pytest.MonkeyPatch, credential: str) -> None:
    production.setenv(credential, "secret")
    with pytest.raises(ValidationError, match="SMTP_USE_TLS or SMTP_START_TLS"):
        Settings()


@pytest.mark.parametrize("tls", ["SMTP_USE_TLS", "SMTP_START_TLS"])
def test_production_accepts_an_smtp_login_over_tls(production: pytest.MonkeyPatch, tls: str) -> None:
    production.setenv("SMTP_USERNAME", "billing")
    production.setenv("SMTP_PASSWORD", "secret")
    production.setenv(tls, "true")
    settings = Settings()
    assert settings.smtp_username == "billing" and (settings.smtp_use_tls or settings.smtp_start_tls)


def test_production_accepts_no_login_without_tls(production: pytest.MonkeyPatch) -> None:
    # A relay that trusts the network (no login) sends no password, so there is nothing to protect.
    production.setenv("SMTP_USERNAME", "")
    assert Settings().smtp_use_tls is False


@pytest.mark.parametrize(
    "sender", [LOCAL_SENDER, "Billing <billing@example.com>", "noreply@EXAMPLE.COM", "billing@mail.example.com"]
)
def test_production_refuses_a_sender_at_example_com(production: pytest.MonkeyPatch, sender: str) -> None:
    production.setenv("NOTIFIER_SENDER", sender)
    with pytest.raises(ValidationError, match="NOTIFIER_SENDER must be set"):
        Settings()


def test_production_refuses_the_default_sender(production: pytest.MonkeyPatch) -> None:
    production.delenv("NOTIFIER_SENDER")
    with pytest.raises(ValidationError, match="NOTIFIER_SENDER must be set"):
        Settings()


@pytest.mark.parametrize("sender", ["billing@acme.test", "Acme <billing@notexample.com>"])
def test_production_accepts_a_real_sender(production: pytest.MonkeyPatch, sender: str) -> None:
    production.setenv("NOTIFIER_SENDER", sender)
    assert Settings().notifier_sender == sender
