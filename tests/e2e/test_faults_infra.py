"""The infrastructure fails under load (database connections cut, SMTP down): nothing is lost or doubled."""

from __future__ import annotations

import threading

from billing_api import metric
from faults import SubscribeFlows, save_artifact, terminate_db_connections


def test_database_connections_cut_mid_load_lose_and_double_nothing(stack, api):
    flows = SubscribeFlows.prepare(api, stack, 8, label="Pg cut")
    cut: list[int] = []
    done = threading.Event()

    def cut_at_each_stage() -> None:
        # Once while the POSTs are in flight, once while charging, once while mailing.
        cut.append(terminate_db_connections(stack))
        for reached in (lambda: flows.gateway_charges() >= 3, lambda: flows.mails_received() >= 8 + 6):
            try:
                api.wait_for(lambda: reached() or done.is_set(), timeout=30, what="the next stage")
            except AssertionError:
                return
            cut.append(terminate_db_connections(stack))

    cutter = threading.Thread(target=cut_at_each_stage)
    cutter.start()
    try:
        flows.subscribe_all()
    finally:
        cutter.join(timeout=60)
        done.set()

    # A cut between the SMTP server's accept and the notifier's commit resends that mail (same Message-ID).
    report = flows.assert_all_complete(timeout=90, mails_may_repeat=True)
    assert len(cut) == 3 and all(cut), f"a stage was not reached or cut nothing: {cut}"
    report["connections_cut"] = cut
    save_artifact("fault-pg-terminate.json", report)


def test_smtp_down_for_a_while_then_every_mail_arrives_once(stack, api):
    flows = SubscribeFlows.prepare(api, stack, 4, label="Smtp down")
    api.wait_for(lambda: flows.mails_received() >= 4, what="the welcome mails")
    failed_before = metric(stack, "notifier", "events_handled_total", outcome="failed")

    stack.stack.processes["smtp-sink"].stop()
    try:
        flows.subscribe_all()
        for customer in flows.customers:
            api.wait_invoices(customer["id"], 1, "paid")
        # At least one delivery has failed all its SMTP attempts and gone back to the queue.
        api.wait_for(lambda: metric(stack, "notifier", "events_handled_total", outcome="failed") > failed_before,
                     timeout=40, what="a delivery failing while SMTP is down")
        assert flows.mails_received() == 4
    finally:
        stack.stack.restart("smtp-sink")

    report = flows.assert_all_complete(timeout=90)
    save_artifact("fault-smtp-down.json", report)
