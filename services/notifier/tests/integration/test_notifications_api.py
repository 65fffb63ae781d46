"""GET /api/notifications: the log of sent emails; admins see all, a user only their own."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from billing_shared.contracts import InvoicePaid
from billing_shared.testing import EventBus, wait_for
from tests.support import T0, new_customer

if TYPE_CHECKING:
    from billing_shared.testing import TestInfra
    from tests.fakes import SmtpSink


@pytest.fixture(scope="module")
async def two_customers(bus: EventBus, mail: SmtpSink, client: httpx.AsyncClient, admin_headers: dict[str, str]) -> Any:
    """Ada with a welcome and three receipts (all logged), Bob with a welcome."""
    ada, ada_email = await new_customer(bus, mail)
    bob, _ = await new_customer(bus, mail, name="Bob")
    for n in range(3):
        await bus.publish(
            InvoicePaid(invoice_id=uuid.uuid4(), number=f"INV-9{n}", customer_id=ada, currency="USD",
                        amount_paid=100 + n, paid_at=T0)
        )

    async def all_logged() -> bool:
        page = await client.get("/api/notifications", params={"customer_id": str(ada)}, headers=admin_headers)
        return len(page.json()["data"]) == 4

    await wait_for(all_logged, message="Ada's 4 notifications logged")
    return ada, ada_email, bob


async def test_a_user_lists_their_own_emails_with_recipient_subject_status_and_event(
    client: httpx.AsyncClient, service_env: TestInfra, two_customers: Any
) -> None:
    ada, ada_email, _ = two_customers

    response = await client.get("/api/notifications", headers=service_env.auth(ada))

    assert response.status_code == 200
    body = response.json()
    assert [n["template"] for n in body["data"]] == ["welcome", "invoice_paid", "invoice_paid", "invoice_paid"]
    assert {n["recipient"] for n in body["data"]} == {ada_email}
    assert {n["status"] for n in body["data"]} == {"sent"}
    assert all(n["event_id"] and n["sent_at"] and n["subject"] for n in body["data"])
    assert body["has_more"] is False


async def test_pages_follow_the_cursor_without_gaps_or_repeats(
    client: httpx.AsyncClient, service_env: TestInfra, two_customers: Any
) -> None:
    ada, _, _ = two_customers
    headers = service_env.auth(ada)

    first = (await client.get("/api/notifications", params={"limit": 3}, headers=headers)).json()
    second = (
        await client.get("/api/notifications", params={"limit": 3, "cursor": first["next_cursor"]}, headers=headers)
    ).json()

    assert first["has_more"] is True and len(first["data"]) == 3
    assert second["has_more"] is False and len(second["data"]) == 1
    assert not {n["id"] for n in first["data"]} & {n["id"] for n in second["data"]}


async def test_a_user_asking_for_another_customers_emails_gets_404(
    client: httpx.AsyncClient, service_env: TestInfra, two_customers: Any
) -> None:
    ada, _, bob = two_customers

    response = await client.get("/api/notifications", params={"customer_id": str(bob)}, headers=service_env.auth(ada))

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_an_admin_sees_every_customer_and_can_filter_by_one(
    client: httpx.AsyncClient, admin_headers: dict[str, str], two_customers: Any
) -> None:
    ada, _, bob = two_customers

    everyone = (await client.get("/api/notifications", params={"limit": 100}, headers=admin_headers)).json()
    only_bob = (await client.get("/api/notifications", params={"customer_id": str(bob)}, headers=admin_headers)).json()

    assert {str(ada), str(bob)} <= {n["customer_id"] for n in everyone["data"]}
    assert [(n["customer_id"], n["template"]) for n in only_bob["data"]] == [(str(bob), "welcome")]


async def test_a_rejected_email_shows_its_user_a_neutral_error_and_an_admin_the_smtp_servers_reply(
    bus: EventBus, mail: SmtpSink, client: httpx.AsyncClient, service_env: TestInfra, admin_headers: dict[str, str]
) -> None:
    customer_id, email = await new_customer(bus, mail)
    mail.unknown_mailboxes.add(email)
    await bus.publish(InvoicePaid(invoice_id=uuid.uuid4(), number="INV-93", customer_id=customer_id, currency="USD",
                                  amount_paid=100, paid_at=T0))

    async def rejected(headers: dict[str, str]) -> dict[str, Any] | None:
        page = await client.get("/api/notifications", params={"customer_id": str(customer_id)}, headers=headers)
        return next((n for n in page.json()["data"] if n["status"] == "rejected"), None)

    for_admin = await wait_for(lambda: rejected(admin_headers), message="the receipt logged as rejected")
    for_user = await rejected(service_env.auth(customer_id))

    server = f"{mail.host}:{mail.port}"
    assert server in for_admin["error"] and "No such user" in for_admin["error"]  # support sees what the server said
    assert for_user is not None and for_user["error"]
    assert server not in for_user["error"] and mail.host not in for_user["error"]
    assert {**for_user, "error": None} == {**for_admin, "error": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"cursor": "nope"}, "cursor"),
        ({"customer_id": "x"}, "customer_id"),
    ],
)
async def test_bad_query_parameters_are_a_422_naming_the_field(
    client: httpx.AsyncClient, admin_headers: dict[str, str], params: dict[str, Any], field: str
) -> None:
    response = await client.get("/api/notifications", params=params, headers=admin_headers)

    assert response.status_code == 422
    assert response.json()["error"]["field"] == field


async def test_listing_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/notifications")

    assert response.status_code == 401
