"""The shared checks for values in request bodies: instants (UtcDatetime) and currencies for new charges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter, ValidationError

from billing_shared.clock import EARLIEST, LATEST, UtcDatetime
from billing_shared.money import chargeable_currency, normalize_currency

instant = TypeAdapter(UtcDatetime)


def test_an_instant_with_its_zone_is_converted_to_utc():
    parsed = instant.validate_python("2026-03-01T09:30:00+05:30")
    assert parsed == datetime(2026, 3, 1, 4, 0, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(0)


def test_an_instant_without_a_zone_is_refused():
    with pytest.raises(ValidationError, match="timezone"):
        instant.validate_python("2026-03-01T09:30:00")


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:00:00-05:00",  # the year 10000 once in UTC: Python cannot hold it
        "0001-01-01T00:30:00+01:00",  # the year 0 once in UTC
        "9999-12-31T23:59:59Z",  # representable, but any date arithmetic on it overflows
        "1969-12-31T23:59:59Z",
    ],
)
def test_an_instant_out_of_range_is_a_validation_error_not_an_overflow(value):
    with pytest.raises(ValidationError, match="must be between"):
        instant.validate_python(value)


def test_the_range_ends_are_inclusive_then_exclusive():
    assert instant.validate_python(EARLIEST.isoformat()) == EARLIEST
    with pytest.raises(ValidationError):
        instant.validate_python(LATEST.isoformat())
    eastern = timezone(timedelta(hours=-5))
    assert instant.validate_python((LATEST - timedelta(seconds=1)).astimezone(eastern)) == LATEST - timedelta(seconds=1)


@pytest.mark.parametrize("code", ["usd", "EUR", " jpy ", "KWD", "XOF", "CHF"])
def test_currencies_in_use_can_be_charged(code):
    assert chargeable_currency(code) == code.strip().upper()


@pytest.mark.parametrize("code", ["XXX", "XTS", "XAU", "DEM", "HRK"])
def test_codes_that_are_not_legal_tender_today_cannot_be_charged_but_stay_readable(code):
    with pytest.raises(ValueError, match="not legal tender"):
        chargeable_currency(code)
    assert normalize_currency(code) == code  # amounts already stored in it are still read and shown


def test_a_code_that_is_no_currency_at_all_is_refused_as_unknown():
    with pytest.raises(ValueError, match="unknown currency"):
        chargeable_currency("ABC")
