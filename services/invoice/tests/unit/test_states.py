"""Invoice lifecycle: which status may follow which, and when voiding is refused."""

import pytest

from app.domain.states import (
    ALLOWED_TRANSITIONS,
    InvalidTransition,
    InvoiceStatus,
    NotVoidable,
    can_transition,
    check_voidable,
    transition,
)

S = InvoiceStatus

ALLOWED = {
    (S.DRAFT, S.OPEN),
    (S.DRAFT, S.VOID),
    (S.OPEN, S.PAID),
    (S.OPEN, S.VOID),
    (S.OPEN, S.UNCOLLECTIBLE),
    (S.UNCOLLECTIBLE, S.PAID),
    (S.UNCOLLECTIBLE, S.VOID),
}
ALL_PAIRS = [(source, target) for source in S for target in S]


def test_statuses_are_their_lowercase_strings():
    assert [status.value for status in S] == ["draft", "open", "paid", "void", "uncollectible"]
    assert S.OPEN == "open"


def test_table_covers_every_status():
    assert set(ALLOWED_TRANSITIONS) == set(S)


@pytest.mark.parametrize(("source", "target"), sorted(ALLOWED))
def test_allowed_transition_returns_target(source, target):
    assert transition(source, target) is target
    assert can_transition(source, target)


@pytest.mark.parametrize(("source", "target"), [pair for pair in ALL_PAIRS if pair not in ALLOWED])
def test_every_other_transition_is_refused(source, target):
    assert not can_transition(source, target)
    with pytest.raises(InvalidTransition):
        transition(source, target)


def test_transition_accepts_plain_strings():
    assert transition("draft", "open") is S.OPEN


@pytest.mark.parametrize("final", [S.PAID, S.VOID])
def test_paid_and_void_are_final(final):
    assert ALLOWED_TRANSITIONS[final] == frozenset()
    with pytest.raises(InvalidTransition, match=f"{final.value} is a final status"):
        transition(final, S.OPEN)


def test_refusal_names_both_statuses_and_the_options():
    with pytest.raises(InvalidTransition) as refused:
        transition(S.DRAFT, S.PAID)
    message = str(refused.value)
    assert "from draft to paid" in message
    assert "open, void" in message


def test_invalid_transition_is_a_value_error():
    with pytest.raises(ValueError):
        transition(S.PAID, S.VOID)


def test_unknown_status_is_refused_with_the_known_ones():
    with pytest.raises(InvalidTransition, match="unknown invoice status 'refunded'"):
        transition(S.PAID, "refunded")


@pytest.mark.parametrize("status", [S.DRAFT, S.OPEN, S.UNCOLLECTIBLE])
def test_unpaid_invoice_is_voidable(status):
    check_voidable(status, amount_paid=0)


@pytest.mark.parametrize("status", [S.OPEN, S.UNCOLLECTIBLE])
def test_partly_paid_invoice_cannot_be_voided(status):
    with pytest.raises(NotVoidable, match="1 minor units paid"):
        check_voidable(status, amount_paid=1)


def test_paid_invoice_cannot_be_voided_even_at_zero():
    with pytest.raises(NotVoidable, match="cannot void a paid invoice"):
        check_voidable(S.PAID, amount_paid=0)


def test_void_invoice_cannot_be_voided_again():
    with pytest.raises(InvalidTransition, match="void is a final status"):
        check_voidable(S.VOID, amount_paid=0)


@pytest.mark.parametrize("amount_paid", [-1, 1.5, True])
def test_check_voidable_rejects_nonsense_amounts(amount_paid):
    with pytest.raises(ValueError, match="amount_paid"):
        check_voidable(S.OPEN, amount_paid)
