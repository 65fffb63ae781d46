"""RabbitMQ stopped and started mid-load: the outboxes hold every event meanwhile, nothing is lost or doubled.

`rabbitmqctl stop_app` stops the broker for every vhost on the machine (other test sessions included), so this
module is marked `broker_restart` and the e2e conftest runs it last. Deselect it with `-m "not broker_restart"`.
"""

from __future__ import annotations

import subprocess
from typing import Any

import httpx
import pytest

from billing_shared.bootstrap import SERVICES
from faults import SubscribeFlows, save_artifact

pytestmark = pytest.mark.broker_restart


def rabbitmqctl(*args: str, timeout: float = 120) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=timeout)


def ready_check(stack: Any, service: str) -> tuple[int, Any]:
    response = httpx.get(f"http://127.0.0.1:{stack.stack.config.port(service)}/ready", timeout=10)
    return response.status_code, response.json().get("checks")


def test_broker_stopped_and_started_mid_load_loses_and_doubles_nothing(stack, api):
    before = SubscribeFlows.prepare(api, stack, 4, label="Broker early")
    during = SubscribeFlows.prepare(api, stack, 3, label="Broker late")
    during.gateway_before = before.gateway_before

    before.subscribe_all()
    api.wait_for(lambda: before.gateway_charges() >= 1, timeout=30, what="the first charges")
    rabbitmqctl("stop_app")
    try:
        # The API keeps taking work while the broker is away: it waits in each service's outbox.
        during.subscribe_all()
        readiness = {service: ready_check(stack, service) for service in SERVICES}
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")

    report_before = before.assert_all_complete(timeout=120, only_these_charged=False)
    report_during = during.assert_all_complete(timeout=120, only_these_charged=False)
    delta = report_during["gateway"]
    assert (delta["charges"], delta["refunds"]) == (7, 0), delta
    save_artifact("fault-broker-restart.json", {"before": report_before, "during": report_during,
                                                "ready_during_outage": readiness})
    # /ready is what a load balancer or orchestrator asks: it must say so while the broker is gone.
    assert all(status == 503 for status, _ in readiness.values()), readiness
