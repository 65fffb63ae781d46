"""Card validation as a specification: Luhn, brand, expiry, CVC, and the keyed fingerprint."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.cards import (
    CardBrand,
    CardDetails,
    CardValidationError,
    detect_brand,
    fingerprint,
    luhn_check_digit,
    luhn_valid,
    validate_card,
)

TODAY = date(2025, 3, 15)
VISA = "4242424242424242"
AMEX = "378282246310005"


def card_error(number: str = VISA, exp_month: int = 12, exp_year: int = 2030, cvc: str = "123",
               today: date = TODAY) -> CardValidationError:
    with pytest.raises(CardValidationError) as caught:
        validate_card(number, exp_month, exp_year, cvc, today)
    return caught.value


class TestCardNumber:
    def test_valid_visa_yields_brand_last4_and_expiry(self) -> None:
        details = validate_card(VISA, 12, 2030, "123", TODAY)
        assert details == CardDetails(brand=CardBrand.VISA, last4="4242", exp_month=12, exp_year=2030)

    def test_details_keep_nothing_but_brand_last4_and_expiry(self) -> None:
        assert set(CardDetails.__slots__) == {"brand", "last4", "exp_month", "exp_year"}

    def test_spaces_and_dashes_are_ignored(self) -> None:
        assert validate_card(" 4242 4242-4242 4242 ", 12, 2030, "123", TODAY).last4 == "4242"

    def test_sequential_digits_fail_the_luhn_check(self) -> None:
        error = card_error(number="1234567890123456")
        assert (error.field, error.message) == ("card_number", "card_number fails the Luhn check")

    def test_one_mistyped_digit_fails_the_luhn_check(self) -> None:
        assert card_error(number="4242424242424241").message == "card_number fails the Luhn check"

    @pytest.mark.parametrize(
        "number", ["4242x42424242424", "4242.4242.4242.4242", "", "   ", "４２４２４２４２４２４２４２４２"]
    )
    def test_anything_but_digits_spaces_and_dashes_is_refused(self, number: str) -> None:
        error = card_error(number=number)
        assert error.field == "card_number"
        assert "only digits" in error.message

    @pytest.mark.parametrize("number", ["42424242426", "42424242424242424242"])
    def test_fewer_than_12_or_more_than_19_digits_is_refused(self, number: str) -> None:
        error = card_error(number=number)
        assert error.field == "card_number"
        assert "12 to 19 digits" in error.message

    @pytest.mark.parametrize("number", ["400000000002", "4000000000000000006"])
    def test_12_and_19_digit_numbers_are_accepted(self, number: str) -> None:
        assert validate_card(number, 12, 2030, "123", TODAY).brand is CardBrand.VISA

    def test_error_message_never_contains_the_number(self) -> None:
        error = card_error(number="1234567890123456")
        assert "1234567890123456" not in str(error)


class TestLuhn:
    @given(st.text(alphabet="0123456789", min_size=11, max_size=18))
    def test_appending_the_check_digit_makes_any_payload_pass(self, payload: str) -> None:
        assert luhn_valid(payload + luhn_check_digit(payload))

    @given(st.text(alphabet="0123456789", min_size=11, max_size=18), st.data())
    def test_changing_any_single_digit_breaks_the_check(self, payload: str, data: st.DataObject) -> None:
        number = payload + luhn_check_digit(payload)
        position = data.draw(st.integers(0, len(number) - 1))
        replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != number[position]]))
        assert not luhn_valid(number[:position] + replacement + number[position + 1:])

    def test_non_digits_never_pass(self) -> None:
        assert not luhn_valid("")
        assert not luhn_valid("4242 4242 4242 4242")


class TestBrand:
    @pytest.mark.parametrize(
        ("number", "brand"),
        [
            ("4242424242424242", CardBrand.VISA),
            ("4000000000000002", CardBrand.VISA),
            ("5555555555554444", CardBrand.MASTERCARD),
            ("5105105105105100", CardBrand.MASTERCARD),
            ("2223003122003222", CardBrand.MASTERCARD),
            ("2720990000000007", CardBrand.MASTERCARD),
            ("378282246310005", CardBrand.AMEX),
            ("341111111111111", CardBrand.AMEX),
            ("6011111111111117", CardBrand.DISCOVER),
            ("6445644564456445", CardBrand.DISCOVER),
            ("6500000000000002", CardBrand.DISCOVER),
            ("6221260000000000", CardBrand.DISCOVER),
            ("6200000000000005", CardBrand.UNKNOWN),
            ("3056930009020004", CardBrand.UNKNOWN),
            ("2721000000000000", CardBrand.UNKNOWN),
        ],
    )
    def test_brand_follows_the_issuer_prefix(self, number: str, brand: CardBrand) -> None:
        assert detect_brand(number) is brand

    def test_short_input_is_unknown_rather_than_an_error(self) -> None:
        assert detect_brand("2") is CardBrand.UNKNOWN


class TestExpiry:
    def test_card_is_valid_through_the_last_day_of_its_expiry_month(self) -> None:
        assert validate_card(VISA, 3, 2025, "123", date(2025, 3, 31)).exp_month == 3

    def test_card_expires_on_the_first_day_of_the_following_month(self) -> None:
        error = card_error(exp_month=3, exp_year=2025, today=date(2025, 4, 1))
        assert (error.field, error.message) == ("exp_month", "card expired at the end of 03/2025")

    def test_card_that_expired_in_an_earlier_year_names_the_year(self) -> None:
        error = card_error(exp_month=12, exp_year=2024, today=date(2025, 1, 1))
        assert (error.field, error.message) == ("exp_year", "card expired at the end of 12/2024")

    def test_december_expiry_is_valid_on_new_years_eve(self) -> None:
        assert validate_card(VISA, 12, 2025, "123", date(2025, 12, 31)).exp_year == 2025

    def test_two_digit_year_means_this_century(self) -> None:
        assert validate_card(VISA, 4, 27, "123", TODAY).exp_year == 2027

    @pytest.mark.parametrize("month", [0, 13, -1])
    def test_month_outside_1_to_12_is_refused(self, month: int) -> None:
        error = card_error(exp_month=month)
        assert (error.field, error.message) == ("exp_month", "exp_month must be between 1 and 12")

    @pytest.mark.parametrize("year", [150, 1999, 10000])
    def test_year_that_is_neither_two_nor_four_digits_of_this_era_is_refused(self, year: int) -> None:
        assert card_error(exp_year=year).field == "exp_year"

    def test_year_more_than_fifty_years_ahead_is_refused(self) -> None:
        error = card_error(exp_year=2076)
        assert (error.field, error.message) == ("exp_year", "exp_year is more than 50 years ahead")

    def test_boolean_is_not_a_month(self) -> None:
        assert card_error(exp_month=True).message == "exp_month must be an integer"  # type: ignore[arg-type]


class TestCvc:
    def test_three_digits_for_visa(self) -> None:
        assert validate_card(VISA, 12, 2030, "007", TODAY).brand is CardBrand.VISA

    def test_four_digits_for_amex(self) -> None:
        assert validate_card(AMEX, 12, 2030, "1234", TODAY).brand is CardBrand.AMEX

    @pytest.mark.parametrize(("number", "cvc", "expected"), [
        (VISA, "12", "cvc must be 3 digits for visa cards"),
        (VISA, "1234", "cvc must be 3 digits for visa cards"),
        (VISA, "12a", "cvc must be 3 digits for visa cards"),
        (AMEX, "123", "cvc must be 4 digits for amex cards"),
    ])
    def test_wrong_length_or_non_digits_are_refused(self, number: str, cvc: str, expected: str) -> None:
        error = card_error(number=number, cvc=cvc)
        assert (error.field, error.message) == ("cvc", expected)


class TestFingerprint:
    KEY = b"fingerprint-test-key"

    def test_same_card_in_any_formatting_has_one_fingerprint(self) -> None:
        assert fingerprint("4242 4242 4242 4242", self.KEY) == fingerprint("4242-4242-4242-4242", self.KEY)

    def test_different_cards_have_different_fingerprints(self) -> None:
        assert fingerprint(VISA, self.KEY) != fingerprint("5555555555554444", self.KEY)

    def test_fingerprint_depends_on_the_secret_key(self) -> None:
        assert fingerprint(VISA, self.KEY) != fingerprint(VISA, b"another-key")

    def test_fingerprint_is_hex_sha256_without_the_number(self) -> None:
        value = fingerprint(VISA, self.KEY)
        assert len(value) == 64 and set(value) <= set("0123456789abcdef")
        assert VISA not in value

    def test_empty_key_is_refused(self) -> None:
        with pytest.raises(ValueError, match="non-empty"):
            fingerprint(VISA, b"")
