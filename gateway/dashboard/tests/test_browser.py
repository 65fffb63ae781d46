"""In headless Chromium: an admin signs in and looks around; a non-admin is turned away."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from billing_shared.auth import generate_keypair

from dashboard.main import create_app
from dashboard.settings import DashboardSettings

from .fake_api import ADMIN_KEY, SCRIPT_NAME, USER_KEY, FakeApi, create_fake_api

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[3] / "tests" / "artifacts"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium package is not installed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def live_dashboard() -> Iterator[tuple[str, FakeApi]]:
    """The dashboard on a real port, in front of the fake APIs, for the browser to visit."""
    (private, public), (other, _) = generate_keypair(), generate_keypair()
    fake = FakeApi(private_key=private, other_private_key=other, public_key=public)
    settings = DashboardSettings(
        environment="test",
        dashboard_jwt_public_key=public,
        dashboard_session_secret="browser-test-session-secret-0123456789",
        dashboard_page_size=10,
    )
    app = create_app(settings, transport=httpx.ASGITransport(app=create_fake_api(fake)))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            thread.join(0.05)
        assert server.started, "the dashboard did not start"
        yield f"http://127.0.0.1:{port}", fake
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _sign_in(page, base_url: str, api_key: str) -> None:
    page.goto(f"{base_url}/dashboard")
    assert page.url.startswith(f"{base_url}/dashboard/login")
    page.get_by_label("API key").fill(api_key)
    page.get_by_role("button", name="Sign in").click()


def test_admin_signs_in_sees_figures_customers_and_an_invoice(live_dashboard, browser):
    base_url, _ = live_dashboard
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    csp_violations: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda msg: "Content Security Policy" in msg.text and csp_violations.append(msg.text))
    try:
        _sign_in(page, base_url, ADMIN_KEY)
        page.wait_for_url(f"{base_url}/dashboard")
        mrr = page.locator('[data-figure="MRR"] .figure-value')
        assert mrr.inner_text() == "$12,345.00"
        assert page.locator('[data-figure="Dunning recovery rate"] .figure-value').inner_text() == "75.0%"
        assert page.locator("svg.chart-svg").count() >= 2
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Customers").click()
        page.get_by_text(SCRIPT_NAME, exact=True).wait_for()
        assert dialogs == [], "a customer's name ran as script"

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
        page.get_by_role("link", name="INV-2025-0002").click()
        page.wait_for_url(f"{base_url}/dashboard/invoices/*")
        assert page.locator('[data-figure="total"]').inner_text() == "$49.99"
        assert page.get_by_text("Pro plan, monthly").is_visible()
        assert csp_violations == [], csp_violations
    finally:
        context.close()


def test_non_admin_is_refused_and_sees_no_data(live_dashboard, browser):
    base_url, _ = live_dashboard
    context = browser.new_context()
    page = context.new_page()
    try:
        _sign_in(page, base_url, USER_KEY)
        assert page.get_by_text("This dashboard is for administrators only.").is_visible()
        assert page.locator(".figure-value").count() == 0
        page.goto(f"{base_url}/dashboard/customers")
        assert page.url.startswith(f"{base_url}/dashboard/login")
        assert page.get_by_text("Customer 01").count() == 0
    finally:
        context.close()
