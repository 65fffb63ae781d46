"""Dunning end to end on the real broker and database: failures, retries, recovery, exhaustion.

The schedule is "2,3" (retry 2 days after the first failure, 3 days after the second; 3 failures in
all). Time moves only through POST /api/dunning/runs {"as_of": ...}.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from app.domain.cases import end_of_day
from dunning_driver import Debt

from billing_shared.contracts import InvoicePaid, PaymentSucceeded
from billing_shared.testing import events_handled, wait_for

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def at(envelope) -> datetime:
    return envelope.occurred_at


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def same_time(text: str | None, expected: datetime) -> bool:
    return text is not None and datetime.fromisoformat(text.replace("Z", "+00:00")) == expected


async def test_three_failures_exhaust_the_case_with_retries_at_the_configured_offsets(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    first = (await dunning.wait_event("dunning.retry_scheduled", debt))[0]
    case_id = first.payload["case_id"]
    assert first.payload["failures"] == 1
    assert same_time(first.payload["next_retry_at"], epoch + 2 * DAY)
    assert (first.payload["waiting_for_new_payment_method"], first.payload["final"]) == (False, False)
    assert (first.payload["amount"], first.payload["currency"]) == (2500, "EUR")

    assert (await dunning.run(epoch + 2 * DAY - SECOND))["retries_due"] == 0
    assert (await dunning.run(epoch + 2 * DAY))["retries_due"] == 1
    retry = (await dunning.wait_event("dunning.retry_due", debt))[0]
    assert at(retry) == epoch + 2 * DAY
    assert retry.payload["case_id"] == case_id
    assert retry.payload["attempt"] == 2
    assert retry.payload["payment_method_id"] is None
    assert retry.payload["subscription_id"] == str(debt.subscription_id)
    assert retry.payload["payment_id"] == str(debt.payment_id)
    assert dunning.events("dunning.final_notice", debt) == []

    second_failure = at(retry)
    await dunning.fail(debt, second_failure, attempt=2, case_id=case_id)
    scheduled = await dunning.wait_event("dunning.retry_scheduled", debt, lambda e: e.payload["failures"] == 2)
    assert same_time(scheduled[0].payload["next_retry_at"], second_failure + 3 * DAY)
    assert scheduled[0].payload["final"] is True  # the final notice goes with it
    notice = (await dunning.wait_event("dunning.final_notice", debt))[0]
    assert same_time(notice.payload["retry_at"], second_failure + 3 * DAY)

    assert (await dunning.run(second_failure + 3 * DAY - SECOND))["retries_due"] == 0
    assert (await dunning.run(second_failure + 3 * DAY))["retries_due"] == 1
    last_retry = (await dunning.wait_event("dunning.retry_due", debt, lambda e: e.payload["attempt"] == 3))[0]
    assert at(last_retry) == second_failure + 3 * DAY

    await dunning.fail(debt, at(last_retry), attempt=3, case_id=case_id)
    exhausted = (await dunning.wait_event("dunning.exhausted", debt))[0]
    assert exhausted.payload["failures"] == 3
    assert exhausted.payload["invoice_id"] == str(debt.invoice_id)
    assert exhausted.payload["subscription_id"] == str(debt.subscription_id)
    assert at(exhausted) == at(last_retry)

    assert (await dunning.run(at(last_retry) + 30 * DAY))["retries_due"] == 0
    case = await dunning.case(case_id)
    assert (case["status"], case["failures"], case["next_retry_at"]) == ("exhausted", 3, None)
    assert [(a["attempt"], a["trigger"], a["outcome"]) for a in case["attempts"]] == [
        (1, "initial", "failed"),
        (2, "schedule", "failed"),
        (3, "schedule", "failed"),
    ]
    assert same_time(case["attempts"][1]["due_at"], epoch + 2 * DAY)
    assert len(dunning.events("dunning.retry_due", debt)) == 2
    assert len(dunning.events("dunning.retry_scheduled", debt)) == 2


async def test_a_failed_payment_past_32_bit_minor_units_is_chased_like_any_other(dunning, epoch):
    # 30,000,000.00 IDR (two decimals in ISO 4217): about 1,800 US dollars, past int32's 2,147,483,647.
    debt = Debt(amount=3_000_000_000, currency="IDR")
    await dunning.fail(debt, epoch)
    [scheduled] = await dunning.wait_event("dunning.retry_scheduled", debt)
    assert (scheduled.payload["amount"], scheduled.payload["currency"]) == (3_000_000_000, "IDR")
    [case] = await dunning.cases_of(debt)
    assert (case["amount"], case["status"]) == (3_000_000_000, "open")
    run = await dunning.run(epoch + 2 * DAY)
    assert run["retries_due"] == 1
    [due] = await dunning.wait_event("dunning.retry_due", debt)
    assert due.payload["amount"] == 3_000_000_000


async def test_success_after_a_failure_recovers_and_nothing_is_retried_later(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]

    await dunning.succeed(debt, epoch + DAY)  # e.g. the customer paid the invoice by hand
    recovered = (await dunning.wait_event("dunning.recovered", debt))[0]
    assert recovered.payload["case_id"] == case_id
    assert at(recovered) == epoch + DAY

    assert (await dunning.run(epoch + 60 * DAY))["retries_due"] == 0
    case = await dunning.case(case_id)
    assert (case["status"], case["next_retry_at"]) == ("recovered", None)
    assert case["recovered_by_payment_id"] == recovered.payload["recovered_by_payment_id"]
    assert dunning.events("dunning.retry_due", debt) == []


async def test_a_successful_retry_recovers_and_marks_its_attempt(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    await dunning.run(epoch + 2 * DAY)
    retry = (await dunning.wait_event("dunning.retry_due", debt))[0]

    await dunning.succeed(debt, at(retry), attempt=2, case_id=case_id)
    await dunning.wait_event("dunning.recovered", debt)
    case = await dunning.case(case_id)
    assert [(a["attempt"], a["outcome"]) for a in case["attempts"]] == [(1, "failed"), (2, "succeeded")]
    assert (await dunning.run(epoch + 60 * DAY))["retries_due"] == 0


async def test_a_retry_that_paid_is_marked_even_when_its_invoice_paid_closed_the_case_first(dunning, epoch):
    """Dunning applies events concurrently and a retried one can wait a while: invoice.paid may come first."""
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    await dunning.run(epoch + 2 * DAY)
    retry = (await dunning.wait_event("dunning.retry_due", debt))[0]
    payment_id = uuid.uuid4()
    await dunning.bus.publish(
        InvoicePaid(
            invoice_id=debt.invoice_id, customer_id=debt.customer_id, subscription_id=debt.subscription_id,
            currency=debt.currency, total=debt.amount, amount_paid=debt.amount, paid_at=at(retry),
            payment_id=payment_id,
        ),
        occurred_at=at(retry),
    )
    await dunning.wait_event("dunning.recovered", debt)

    await dunning.bus.publish(
        PaymentSucceeded(**debt.facts(), payment_id=payment_id, dunning_case_id=case_id, attempt=2),
        occurred_at=at(retry),
    )

    async def attempts() -> list | None:
        found = [(a["attempt"], a["outcome"], a["payment_id"]) for a in (await dunning.case(case_id))["attempts"]]
        return found if found[-1][1] != "pending" else None

    assert await wait_for(attempts, message="the retry's attempt to be marked") == [
        (1, "failed", str(debt.payment_id)), (2, "succeeded", str(payment_id))
    ]
    assert len(dunning.events("dunning.recovered", debt)) == 1


async def test_a_new_card_during_dunning_triggers_an_immediate_retry_with_it(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]

    method_id = await dunning.add_card(debt, epoch + 6 * 3600 * SECOND)
    retry = (await dunning.wait_event("dunning.retry_due", debt))[0]
    assert at(retry) == epoch + 6 * 3600 * SECOND
    assert retry.payload["attempt"] == 2
    assert retry.payload["payment_method_id"] == str(method_id)
    assert retry.payload["case_id"] == case_id

    # The immediate retry took the slot: the scheduled one is not sent as well.
    assert (await dunning.run(epoch + 2 * DAY))["retries_due"] == 0
    case = await dunning.case(case_id)
    assert case["attempts"][1]["trigger"] == "payment_method"
    assert case["attempts"][1]["outcome"] == "pending"


async def _card_taken_in(dunning, debt: Debt, at: datetime) -> uuid.UUID:
    """Publish payment_method.added (a new default card) at `at` and wait until dunning handled it."""
    added_before = events_handled("dunning", "payment_method.added", "handled")
    method_id = await dunning.add_card(debt, at)

    async def taken_in() -> bool:
        return events_handled("dunning", "payment_method.added", "handled") > added_before

    await wait_for(taken_in, message="the new card taken in")
    return method_id


async def test_a_card_added_while_a_retry_is_under_way_is_tried_when_that_retry_fails(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    assert (await dunning.run(epoch + 2 * DAY))["retries_due"] == 1  # attempt 2, on the old card, under way

    method_id = await _card_taken_in(dunning, debt, epoch + 2 * DAY + SECOND)
    await dunning.fail(debt, epoch + 2 * DAY + 2 * SECOND, attempt=2, case_id=uuid.UUID(case_id))

    retries = await dunning.wait_event("dunning.retry_due", debt, count=2)
    assert [(r.payload["attempt"], r.payload["payment_method_id"]) for r in retries] == [(2, None), (3, str(method_id))]
    # Told nothing yet: the new card's attempt is under way, its outcome is what the customer hears of.
    assert len(dunning.events("dunning.retry_scheduled", debt)) == 1
    assert dunning.events("dunning.final_notice", debt) == []


async def _at_the_last_retry(dunning, debt: Debt, epoch: datetime) -> tuple[str, datetime]:
    """Fail the first two attempts; the third (the last the schedule has) is under way. The case id and when."""
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    assert (await dunning.run(epoch + 2 * DAY))["retries_due"] == 1
    await dunning.fail(debt, epoch + 2 * DAY, attempt=2, case_id=uuid.UUID(case_id))
    await dunning.wait_event("dunning.final_notice", debt)
    last = epoch + 5 * DAY
    assert (await dunning.run(last))["retries_due"] == 1
    return case_id, last


async def test_a_card_added_while_the_last_retry_is_under_way_is_tried_before_the_case_gives_up(dunning, epoch):
    debt = Debt()
    case_id, last = await _at_the_last_retry(dunning, debt, epoch)
    method_id = await _card_taken_in(dunning, debt, last + SECOND)
    await dunning.fail(debt, last + 2 * SECOND, attempt=3, case_id=uuid.UUID(case_id))

    retries = await dunning.wait_event("dunning.retry_due", debt, count=3)
    assert [(r.payload["attempt"], r.payload["payment_method_id"]) for r in retries][-1] == (4, str(method_id))
    assert dunning.events("dunning.exhausted", debt) == []
    assert (await dunning.case(case_id))["status"] == "open"


async def test_the_last_retry_failing_after_the_invoice_was_paid_otherwise_exhausts_nothing(dunning, epoch):
    debt = Debt()
    case_id, last = await _at_the_last_retry(dunning, debt, epoch)
    failures_before = events_handled("dunning", "payment.failed", "handled")
    await dunning.fail(debt, last + SECOND, attempt=3, case_id=uuid.UUID(case_id), invoice_already_paid=True)

    async def failure_taken_in() -> bool:
        return events_handled("dunning", "payment.failed", "handled") > failures_before

    await wait_for(failure_taken_in, message="the last failure taken in")
    # Paid by hand meanwhile: its invoice.paid closes the case. No suspension, no "payment failed" email.
    case = await dunning.case(case_id)
    assert (case["status"], case["failures"], case["next_retry_at"]) == ("open", 3, None)
    assert dunning.events("dunning.exhausted", debt) == []
    assert len(dunning.events("dunning.retry_scheduled", debt)) == 2


async def test_a_card_added_after_a_hard_decline_is_tried_even_when_dunning_hears_of_it_before_the_failure(
    dunning, epoch
):
    debt = Debt()
    method_id = await _card_taken_in(dunning, debt, epoch + SECOND)  # no case yet: it is remembered
    await dunning.fail(debt, epoch, decline_type="hard")

    [retry] = await dunning.wait_event("dunning.retry_due", debt)
    assert (retry.payload["attempt"], retry.payload["payment_method_id"]) == (2, str(method_id))
    assert dunning.events("dunning.retry_scheduled", debt) == []  # no "add a new card" email: it was added


async def test_a_card_added_before_the_failure_heard_of_after_it_is_no_reason_to_retry_now(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch)
    await dunning.wait_event("dunning.retry_scheduled", debt)
    await _card_taken_in(dunning, debt, epoch - SECOND)  # there when the charge failed, maybe the card it used

    assert dunning.events("dunning.retry_due", debt) == []
    assert (await dunning.run(epoch + 2 * DAY))["retries_due"] == 1  # the schedule goes on as it was


async def test_a_hard_decline_waits_for_a_new_payment_method_instead_of_retrying(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch, decline_type="hard")
    waiting = (await dunning.wait_event("dunning.retry_scheduled", debt))[0]
    assert waiting.payload["waiting_for_new_payment_method"] is True
    assert waiting.payload["next_retry_at"] is None
    case_id = waiting.payload["case_id"]

    assert (await dunning.run(epoch + 4 * DAY))["retries_due"] == 0
    case = await dunning.case(case_id)
    assert (case["status"], case["waiting_for_payment_method"]) == ("open", True)

    method_id = await dunning.add_card(debt, epoch + 4 * DAY)
    retry = (await dunning.wait_event("dunning.retry_due", debt))[0]
    assert (retry.payload["attempt"], retry.payload["payment_method_id"]) == (2, str(method_id))
    assert (await dunning.case(case_id))["waiting_for_payment_method"] is False


async def test_a_hard_decline_without_a_new_method_is_exhausted_when_the_schedule_would_end(dunning, epoch):
    debt = Debt()
    await dunning.fail(debt, epoch, decline_type="hard")
    [waiting] = await dunning.wait_event("dunning.retry_scheduled", debt)
    # The customer is told the day: the case waits to its end.
    deadline = end_of_day(epoch + 5 * DAY)
    assert same_time(waiting.payload["wait_until"], deadline)

    assert (await dunning.run(deadline - SECOND))["exhausted"] == 0
    assert (await dunning.run(deadline))["exhausted"] == 1
    exhausted = (await dunning.wait_event("dunning.exhausted", debt))[0]
    assert at(exhausted) == deadline
    assert dunning.events("dunning.retry_due", debt) == []


async def test_a_one_off_payment_without_invoice_is_dunned_by_its_payment(dunning, epoch):
    debt = Debt(invoice_id=None, subscription_id=None)
    await dunning.fail(debt, epoch)
    case_id = (await dunning.wait_event("dunning.retry_scheduled", debt))[0].payload["case_id"]
    await dunning.run(epoch + 2 * DAY)
    retry = (await dunning.wait_event("dunning.retry_due", debt))[0]
    assert retry.payload["payment_id"] == str(debt.payment_id)
    assert retry.payload["invoice_id"] is None

    await dunning.fail(debt, at(retry), attempt=2, case_id=case_id)  # the retry is a new payment of the case
    await dunning.wait_event("dunning.retry_scheduled", debt, lambda e: e.payload["failures"] == 2)
    await dunning.succeed(debt, at(retry) + DAY, attempt=3, case_id=case_id)
    await dunning.wait_event("dunning.recovered", debt)
    assert (await dunning.case(case_id))["failures"] == 2
