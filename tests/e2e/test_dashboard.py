"""The admin dashboard on the whole running system, in headless Chromium, through the gateway.

An admin signs in with an API key and finds a customer and an invoice made through the public API; the
customer's name (with a <script> in it) renders as text; a customer's own key is refused.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from billing_api import BillingApi, check

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium package is not installed")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def subscribed(stack: Any, api: BillingApi) -> dict[str, Any]:
    """A customer whose name carries a <script>, subscribed through the API, with its first invoice."""
    tag = uuid.uuid4().hex[:8]
    customer = stack.new_customer(f"<script>alert('dashboard')</script> Dash {tag}")
    plan = api.create_plan(f"Dashboard plan {tag}", 1999)
    subscription = api.subscribe(customer, plan["id"])
    invoices = api.wait_for(
        lambda: [i for i in api.invoices(customer["id"]) if i["number"]],
        timeout=30, what=f"a finalized invoice for customer {customer['id']}",
    )
    return {"tag": tag, "customer": customer, "subscription": subscription, "invoice": invoices[0]}


def sign_in(page: Any, base_url: str, api_key: str) -> None:
    page.goto(f"{base_url}/dashboard")
    assert "/dashboard/login" in page.url, "an anonymous visitor must be sent to sign in"
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()


def figure(page: Any, title: str) -> str:
    return page.locator(f'[data-figure="{title}"] .figure-value').inner_text().strip()


def test_admin_sees_the_customer_and_invoice_made_through_the_api(stack, api, browser, subscribed):
    customer, invoice = subscribed["customer"], subscribed["invoice"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    try:
        sign_in(page, stack.base_url, stack.admin_key)
        page.wait_for_url(f"{stack.base_url}/dashboard")

        # A figure, as the subscription service counts it.
        with stack.client() as http:
            stats = check(http.get("/api/subscriptions/stats", headers=stack.admin_headers()), 200)
        assert int(figure(page, "Active subscriptions")) == stats["counts"]["active"] >= 1
        assert figure(page, "MRR") != "unavailable" and "$" in figure(page, "MRR")
        assert page.locator("svg.chart-svg").count() >= 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-e2e.png"), full_page=True)

        # The customer, found with the search box; the name shows as typed and runs nothing.
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
        page.get_by_label("Search").fill(subscribed["tag"])
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name=customer["name"], exact=True).wait_for()
        assert "<script>alert('dashboard')" not in page.content()
        assert dialogs == [], "a customer's name ran as script"

        # The customer's invoice, its page in the dashboard, and the invoice service's printable page.
        page.get_by_role("link", name=customer["name"], exact=True).click()
        page.get_by_role("link", name=invoice["number"]).first.click()
        page.wait_for_url(f"{stack.base_url}/dashboard/invoices/{invoice['id']}")
        assert page.locator('[data-figure="total"]').inner_text() == "$19.99"
        page.get_by_role("link", name="Open invoice page").click()
        page.wait_for_load_state()
        assert f"/invoices/{invoice['id']}" in page.url
        assert page.get_by_text(invoice["number"]).first.is_visible()
        assert dialogs == []
    finally:
        context.close()


def test_a_customers_own_key_is_refused(stack, browser, subscribed):
    context = browser.new_context()
    page = context.new_page()
    try:
        sign_in(page, stack.base_url, subscribed["customer"]["api_key"])
        assert page.get_by_text("This dashboard is for administrators only.").is_visible()
        assert page.locator(".figure-value").count() == 0
        page.goto(f"{stack.base_url}/dashboard/customers")
        assert "/dashboard/login" in page.url
        assert page.get_by_text(subscribed["tag"]).count() == 0
    finally:
        context.close()
