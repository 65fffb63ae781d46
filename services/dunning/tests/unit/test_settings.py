"""DUNNING_RETRY_DAYS: a bad schedule stops the service from starting, with a message naming the variable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from app.main import create_app
from app.settings import Settings


def test_the_default_schedule_retries_after_2_then_3_days(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUNNING_RETRY_DAYS", raising=False)
    assert Settings().retry_schedule == (timedelta(days=2), timedelta(days=3))
    assert Settings().dunning_scheduler_interval_s == 30
    assert Settings().dunning_max_as_of_ahead_days == 3660  # runs as of more than 10 years ahead are refused


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2,5,9", (2.0, 5.0, 9.0)), (" 1 , 2 ", (1.0, 2.0)), ("0.5,1.25", (0.5, 1.25)), ("7", (7.0,))],
)
def test_schedules_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, expected) -> None:
    monkeypatch.setenv("DUNNING_RETRY_DAYS", raw)
    assert Settings().dunning_retry_days == expected


@pytest.mark.parametrize("raw", ["", " ", "2,,3", "-1", "2,-3", "0", "abc", "2;3", "nan", "inf", "400", ",".join(["1"] * 21)])
def test_a_bad_schedule_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("DUNNING_RETRY_DAYS", raw)
    with pytest.raises(ValidationError, match="DUNNING_RETRY_DAYS"):
        Settings()


@pytest.mark.parametrize("raw", ["", "-2,3"])
def test_the_app_factory_refuses_to_start_with_a_bad_schedule(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("DUNNING_RETRY_DAYS", raw)
    with pytest.raises(ValidationError, match="DUNNING_RETRY_DAYS"):
        create_app()


def test_the_scheduler_interval_must_be_positive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNNING_SCHEDULER_INTERVAL_S", "0")
    with pytest.raises(ValidationError, match="dunning_scheduler_interval_s"):
        Settings()
