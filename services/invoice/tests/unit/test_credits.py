"""Credits and payments on a balance: never more than is owed, refunds only of money received, excess given back."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.credits import Balance, NothingToCredit, allocate_refund, apply_credit, apply_payment
from app.domain.states import InvoiceStatus

PAID, OPEN = InvoiceStatus.PAID, InvoiceStatus.OPEN


def test_a_credit_on_a_paid_invoice_is_refunded_in_full():
    decision = apply_credit(PAID, Balance(total=4999, paid=4999), 3387)

    assert (decision.amount, decision.refund_amount, decision.refund_due) == (3387, 3387, True)
    assert decision.status_after is PAID
    assert decision.balance_after.due == 0


def test_a_credit_larger_than_the_invoice_is_capped_at_what_is_left_to_credit():
    decision = apply_credit(PAID, Balance(total=4999, paid=4999, credited=1000, refunded=1000), 10_000)

    assert (decision.amount, decision.refund_amount) == (3999, 3999)


def test_a_credit_on_an_unpaid_invoice_lowers_the_amount_due_and_refunds_nothing():
    decision = apply_credit(OPEN, Balance(total=4999), 1999)

    assert (decision.refund_amount, decision.refund_due) == (0, False)
    assert (decision.balance_after.due, decision.status_after) == (3000, OPEN)


def test_an_unpaid_invoice_credited_in_full_becomes_void():
    assert apply_credit(OPEN, Balance(total=4999), 4999).status_after is InvoiceStatus.VOID


def test_a_partly_paid_invoice_credited_below_what_was_paid_is_paid_and_refunds_the_excess():
    decision = apply_credit(OPEN, Balance(total=10_000, paid=5000), 6000)

    assert decision.refund_amount == 1000
    assert (decision.balance_after.due, decision.status_after) == (0, PAID)


def test_an_uncollectible_invoice_can_be_credited():
    decision = apply_credit(InvoiceStatus.UNCOLLECTIBLE, Balance(total=5000), 2000)
    assert decision.status_after is InvoiceStatus.UNCOLLECTIBLE and decision.balance_after.due == 3000


@pytest.mark.parametrize("status", [InvoiceStatus.DRAFT, InvoiceStatus.VOID])
def test_drafts_and_void_invoices_take_no_credit(status):
    with pytest.raises(NothingToCredit):
        apply_credit(status, Balance(total=5000), 100)


def test_a_fully_credited_invoice_takes_no_more_credit():
    with pytest.raises(NothingToCredit, match="in full"):
        apply_credit(PAID, Balance(total=5000, paid=5000, credited=5000, refunded=5000), 1)


@pytest.mark.parametrize("requested", [0, -5, 1.5, True])
def test_a_credit_must_be_a_positive_int(requested):
    with pytest.raises(ValueError):
        apply_credit(OPEN, Balance(total=5000), requested)


@settings(max_examples=200)
@given(
    total=st.integers(1, 10**7),
    paid_share=st.floats(0, 1),
    requests=st.lists(st.integers(1, 10**7), min_size=1, max_size=5),
)
def test_credits_never_exceed_the_total_and_refunds_never_exceed_what_was_paid(total, paid_share, requests):
    paid = int(total * paid_share)
    balance, status = Balance(total=total, paid=paid), (PAID if paid == total else OPEN)
    for requested in requests:
        try:
            decision = apply_credit(status, balance, requested)
        except NothingToCredit:
            break
        assert 0 < decision.amount <= requested
        assert 0 <= decision.refund_amount <= decision.amount
        balance, status = decision.balance_after, decision.status_after
        assert balance.credited <= total
        assert balance.refunded <= paid
        assert balance.due >= 0
        if status is InvoiceStatus.VOID:
            break


# --- payments: what settles the invoice, what goes back ---------------------------------------------------


def test_a_payment_of_what_is_due_settles_it_with_nothing_in_excess():
    decision = apply_payment(OPEN, Balance(total=5000), 5000)
    assert (decision.applied, decision.excess, decision.balance_after.due) == (5000, 0, 0)


def test_a_payment_beyond_what_is_due_refunds_the_rest():
    decision = apply_payment(OPEN, Balance(total=5000, paid=3000), 5000)
    assert (decision.applied, decision.excess) == (2000, 3000)
    assert decision.balance_after == Balance(total=5000, paid=8000, refunded=3000)
    assert decision.balance_after.due == 0


@pytest.mark.parametrize("status", [PAID, InvoiceStatus.VOID])
def test_a_payment_to_an_invoice_that_owes_nothing_is_all_excess(status):
    decision = apply_payment(status, Balance(total=5000, paid=5000), 5000)
    assert (decision.applied, decision.excess) == (0, 5000)
    assert decision.balance_after.net_paid == 5000


def test_an_uncollectible_invoice_is_still_paid_late():
    decision = apply_payment(InvoiceStatus.UNCOLLECTIBLE, Balance(total=5000, credited=1000), 5000)
    assert (decision.applied, decision.excess) == (4000, 1000)


@pytest.mark.parametrize("amount", [-1, 1.5, True])
def test_a_payment_must_be_an_int_of_minor_units(amount):
    with pytest.raises(ValueError):
        apply_payment(OPEN, Balance(total=5000), amount)


@settings(max_examples=200)
@given(total=st.integers(1, 10**7), payments=st.lists(st.integers(0, 10**7), min_size=1, max_size=6))
def test_what_payments_keep_never_exceeds_what_the_invoice_owes(total, payments):
    balance, status, received = Balance(total=total), OPEN, 0
    for amount in payments:
        decision = apply_payment(status, balance, amount)
        received += amount
        assert decision.applied + decision.excess == amount
        balance = decision.balance_after
        if balance.due == 0:
            status = PAID
    assert balance.net_paid == min(received, total)
    assert balance.paid == received and balance.due == total - balance.net_paid


# --- refunds split over payments -------------------------------------------------------------------


def test_a_refund_comes_from_the_payments_in_order_each_up_to_what_it_has_left():
    assert allocate_refund(4000, [("new", 1500), ("mid", 0), ("old", 5000)]) == [("new", 1500), ("old", 2500)]


def test_a_refund_within_the_first_payment_touches_only_it():
    assert allocate_refund(700, [("new", 1500), ("old", 5000)]) == [("new", 700)]


def test_a_refund_larger_than_the_payments_hold_takes_all_they_hold():
    assert allocate_refund(9000, [("a", 1500), ("b", 2000)]) == [("a", 1500), ("b", 2000)]


@settings(max_examples=200)
@given(amount=st.integers(0, 10**6), left=st.lists(st.integers(0, 10**5), max_size=6))
def test_refund_shares_are_positive_within_each_payment_and_add_up(amount, left):
    shares = allocate_refund(amount, list(enumerate(left)))
    assert all(0 < share <= left[index] for index, share in shares)
    assert sum(share for _, share in shares) == min(amount, sum(left))
    assert [index for index, _ in shares] == sorted(index for index, _ in shares)
