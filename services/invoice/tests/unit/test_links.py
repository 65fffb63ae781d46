"""Signed invoice links: open exactly one invoice until they expire; any change to them breaks the signature."""

import uuid

import pytest

from app.domain.links import sign, verify

SECRET = "s" * 32
INVOICE = uuid.UUID("01a212b4-72bf-7bc7-8201-ccf7527fea05")
NOW = 1_800_000_000


def test_a_link_verifies_for_its_invoice_before_it_expires():
    token = sign(SECRET, INVOICE, NOW + 60)
    assert verify(SECRET, INVOICE, token, NOW)


def test_a_link_expires():
    token = sign(SECRET, INVOICE, NOW + 60)
    assert not verify(SECRET, INVOICE, token, NOW + 60)


def test_a_link_does_not_open_another_invoice_or_verify_under_another_secret():
    token = sign(SECRET, INVOICE, NOW + 60)
    assert not verify(SECRET, uuid.uuid4(), token, NOW)
    assert not verify("t" * 32, INVOICE, token, NOW)


@pytest.mark.parametrize(
    "token",
    [
        "", "abc", "123", ".abc", "x.y", "99999999999999.abc", "-1.abc",
        "².abc",  # a digit to str.isdigit(), not to int()
        "١٨٠٠٠٠٠٠٦٠.abc",  # Arabic-Indic digits
        "1800000060.é",  # compare_digest refuses non-ASCII text
    ],
)
def test_malformed_tokens_are_refused(token):
    assert not verify(SECRET, INVOICE, token, NOW)


def test_a_valid_signature_with_a_non_ascii_tail_is_refused():
    assert not verify(SECRET, INVOICE, sign(SECRET, INVOICE, NOW + 60) + "é", NOW)


def test_extending_the_expiry_breaks_the_signature():
    expires, _, mac = sign(SECRET, INVOICE, NOW + 60).partition(".")
    assert not verify(SECRET, INVOICE, f"{int(expires) + 3600}.{mac}", NOW)


def test_signing_needs_a_secret():
    with pytest.raises(ValueError):
        sign("", INVOICE, NOW)
