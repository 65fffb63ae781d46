"""An invoice voided while its first charge was under way: its invoice.voided may reach dunning before that
charge's payment.failed (events of two services come in any order). Nothing is to be chased then."""

from __future__ import annotations

from datetime import timedelta

from dunning_driver import Debt
from test_canceled_subscriptions import announced, handled_at_least, moment, the_case

from billing_shared.contracts import InvoiceVoided, PaymentFailed
from billing_shared.testing import events_handled

DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


async def test_a_failure_reported_after_its_invoice_was_voided_is_never_retried(app, dunning, epoch):
    debt = Debt()
    voids_before = events_handled("dunning", "invoice.voided")
    voided = InvoiceVoided(
        invoice_id=debt.invoice_id, customer_id=debt.customer_id, subscription_id=debt.subscription_id,
        currency=debt.currency, total=debt.amount,
    )
    await dunning.bus.publish(voided, occurred_at=epoch + MINUTE)
    await handled_at_least("invoice.voided", voids_before + 1)

    await dunning.fail(debt, epoch)  # the charge under way when the invoice was voided
    case = await the_case(dunning, debt)
    assert (case["status"], case["failures"], case["next_retry_at"]) == ("canceled", 1, None)
    assert moment(case["closed_at"]) == epoch + MINUTE
    run = await dunning.run(epoch + 30 * DAY)
    assert (run["retries_due"], run["exhausted"]) == (0, 0)
    # No retry charging a voided invoice, no "payment failed, next try on ..." email, no suspension.
    assert await announced(app, case["id"]) == []


async def test_a_failure_that_says_its_invoice_was_already_paid_opens_no_case(app, dunning, epoch):
    """Say a charge whose answer was lost, found never made after the customer paid by hand: the invoice's
    invoice.paid came first and found no case to close, so the failure itself must not open one."""
    debt = Debt()
    failures_before = events_handled("dunning", "payment.failed")
    await dunning.bus.publish(
        PaymentFailed(**debt.facts(), payment_id=debt.payment_id, failure_code="charge_not_found",
                      invoice_already_paid=True),
        occurred_at=epoch,
    )
    await handled_at_least("payment.failed", failures_before + 1)
    assert await dunning.cases_of(debt) == []
    run = await dunning.run(epoch + 30 * DAY)
    assert (run["retries_due"], run["exhausted"]) == (0, 0)
