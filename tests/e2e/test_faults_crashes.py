"""kill -9 of a service in the middle of its work, then a restart: every flow still finishes exactly once."""

from __future__ import annotations

from billing_api import TEST_CARDS
from faults import SubscribeFlows, TableLock, invoice_numbers_are_gapless, save_artifact


def test_payment_service_killed_while_charging_settles_every_charge_once(stack, api):
    # The "never answers" card holds each charge open at the provider: the kill lands while they are in flight.
    cards = [TEST_CARDS["ok"]] * 3 + [TEST_CARDS["never_answers"]] * 3
    flows = SubscribeFlows.prepare(api, stack, len(cards), cards=cards, label="Kill payment")

    flows.subscribe_all()
    api.wait_for(lambda: flows.gateway_charges() >= len(cards), timeout=30, what="every charge under way")
    stack.stack.kill("payment")
    stack.stack.restart("payment")

    report = flows.assert_all_complete(timeout=60)
    save_artifact("fault-kill-payment.json", report)


def test_invoice_service_killed_while_finalizing_bills_every_period_once(stack, api):
    flows = SubscribeFlows.prepare(api, stack, 8, label="Kill invoice")
    # Numbering is the last step of a finalization: with the number series locked from outside, the invoice
    # service's finalizations stop halfway through their transactions, their events unacked, and are killed there.
    numbering = TableLock(stack, "invoice.counters")
    try:
        flows.subscribe_all()
        api.wait_for(lambda: numbering.waiters_and_holder()[0] >= 1, timeout=30, what="finalizations under way")
        stack.stack.kill("invoice")
    finally:
        numbering.release()
    stack.stack.restart("invoice")

    report = flows.assert_all_complete(timeout=60)
    report["invoice_numbers"] = len(invoice_numbers_are_gapless(api))
    save_artifact("fault-kill-invoice.json", report)


def test_notifier_killed_while_sending_loses_no_mail(stack, api):
    flows = SubscribeFlows.prepare(api, stack, 6, label="Kill notifier")
    already = flows.mails_received()

    flows.subscribe_all()
    api.wait_for(lambda: flows.mails_received() >= already + 3, timeout=30, what="the first mails going out")
    stack.stack.kill("notifier")
    stack.stack.restart("notifier")

    report = flows.assert_all_complete(timeout=60, mails_may_repeat=True)
    save_artifact("fault-kill-notifier.json", report)
