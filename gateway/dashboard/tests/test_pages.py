"""The list and detail pages: one page at a time through the APIs' cursors, filters passed on, data escaped."""

from __future__ import annotations

import html as html_lib
import re

import httpx

from .fake_api import FakeApi, _id


def next_link(html: str) -> str | None:
    match = re.search(r'<a href="([^"]+)" rel="next"', html)
    return html_lib.unescape(match.group(1)) if match else None


async def test_customer_name_with_script_renders_as_text(admin: httpx.AsyncClient):
    html = (await admin.get("/dashboard/customers")).text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; Ltd" in html


async def test_customer_page_escapes_the_name_too(admin: httpx.AsyncClient):
    html = (await admin.get(f"/dashboard/customers/{_id(3)}")).text
    assert "<script>" not in html and "&lt;script&gt;" in html


async def test_customers_list_one_page_and_a_next_link_carrying_the_cursor(admin: httpx.AsyncClient, fake: FakeApi):
    first = await admin.get("/dashboard/customers")
    assert "Customer 01" in first.text and "Customer 11" not in first.text
    assert ("GET", "/api/customers", {"limit": "10"}) in fake.calls
    link = next_link(first.text)
    assert link == f"/dashboard/customers?cursor={_id(10)}"
    second = await admin.get(link)
    assert "Customer 11" in second.text and "Customer 01" not in second.text
    assert fake.calls[-1] == ("GET", "/api/customers", {"cursor": _id(10), "limit": "10"})
    assert 'href="/dashboard/customers">« First page' in second.text


async def test_last_page_has_no_next_link(admin: httpx.AsyncClient):
    third = await admin.get(f"/dashboard/customers?cursor={_id(20)}")
    assert "Customer 30" in third.text and next_link(third.text) is None


async def test_customer_search_is_passed_to_the_api_and_kept_in_the_next_link(admin: httpx.AsyncClient, fake: FakeApi):
    page = await admin.get("/dashboard/customers", params={"q": "customer"})
    assert fake.calls[-1] == ("GET", "/api/customers", {"q": "customer", "limit": "10"})
    assert next_link(page.text) == f"/dashboard/customers?q=customer&cursor={_id(10)}"
    narrow = await admin.get("/dashboard/customers", params={"q": "customer7@"})
    assert "customer7@example.com" in narrow.text and "customer8@example.com" not in narrow.text


async def test_subscriptions_filtered_by_status(admin: httpx.AsyncClient, fake: FakeApi):
    page = await admin.get("/dashboard/subscriptions", params={"status": "past_due"})
    assert fake.calls[-1] == ("GET", "/api/subscriptions", {"status": "past_due", "limit": "10"})
    assert page.text.count('class="badge badge-past_due"') == 1
    assert "<option value=\"past_due\" selected>" in page.text


async def test_unknown_status_filter_is_dropped_not_sent(admin: httpx.AsyncClient, fake: FakeApi):
    await admin.get("/dashboard/invoices", params={"status": "'; drop table"})
    assert fake.calls[-1] == ("GET", "/api/invoices", {"limit": "10"})


async def test_invoices_link_to_their_html_page_and_pdf(admin: httpx.AsyncClient):
    html = (await admin.get("/dashboard/invoices")).text
    assert "INV-2025-0001" in html
    # Signed links from the invoice service when it gives them, the dashboard's proxies otherwise.
    assert f'href="/invoices/{_id(101)}?token=signed"' in html
    assert f'href="/api/invoices/{_id(101)}.pdf?token=signed"' in html
    assert f'href="/dashboard/invoices/{_id(102)}/document"' in html
    assert f'href="/dashboard/invoices/{_id(102)}/pdf"' in html


async def test_invoice_page_shows_lines_totals_and_its_payments(admin: httpx.AsyncClient, fake: FakeApi):
    html = (await admin.get(f"/dashboard/invoices/{_id(102)}")).text
    assert "Invoice INV-2025-0002" in html and "Pro plan, monthly" in html
    assert '<dd data-figure="total">$49.99</dd>' in html
    assert ("GET", "/api/payments", {"invoice_id": _id(102), "limit": "10"}) in fake.calls
    assert "Your card was declined." in html  # the failed payment of this invoice


async def test_subscriptions_show_their_plan_and_price(admin: httpx.AsyncClient):
    html = (await admin.get("/dashboard/subscriptions")).text
    assert html.count("<td>Pro</td>") == 4 and "$49.99 / month" in html


async def test_invoice_pdf_comes_through_the_dashboard_with_the_admin_token(admin: httpx.AsyncClient):
    response = await admin.get(f"/dashboard/invoices/{_id(102)}/pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF")


async def test_invoice_document_is_served_sandboxed_so_it_cannot_run_script(admin: httpx.AsyncClient):
    response = await admin.get(f"/dashboard/invoices/{_id(102)}/document")
    assert response.status_code == 200 and "Invoice page" in response.text
    csp = response.headers["content-security-policy"]
    assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp


async def test_unknown_invoice_is_a_404_page(admin: httpx.AsyncClient):
    response = await admin.get(f"/dashboard/invoices/{_id(999)}")
    assert response.status_code == 404 and "unavailable" in response.text


async def test_malformed_id_is_not_passed_to_the_api(admin: httpx.AsyncClient, fake: FakeApi):
    before = len(fake.calls)
    response = await admin.get("/dashboard/invoices/..%2F..%2Fapi%2Fcustomers")
    assert response.status_code == 404
    assert len(fake.calls) == before


async def test_payments_page_lists_payments_and_failures(admin: httpx.AsyncClient):
    html = (await admin.get("/dashboard/payments")).text
    assert html.count("badge-succeeded") == 2 and html.count("badge-failed") == 2
    assert "Your card was declined." in html


async def test_dunning_case_shows_its_attempts_in_time_order(admin: httpx.AsyncClient):
    cases = (await admin.get("/dashboard/dunning")).text
    assert f'href="/dashboard/dunning/{_id(500)}"' in cases
    html = (await admin.get(f"/dashboard/dunning/{_id(500)}")).text
    attempts = re.findall(r"<strong>Attempt (\d+)</strong>", html)
    assert attempts == ["1", "2", "3"]
    assert "insufficient_funds" in html and "due 2025-01-09 00:00 UTC" in html
    assert re.findall(r'class="badge badge-(\w+)">', html)[1:] == ["failed", "failed", "pending"]


async def test_list_with_its_service_down_says_unavailable(admin: httpx.AsyncClient, fake: FakeApi):
    fake.broken.add("/api/payments")
    response = await admin.get("/dashboard/payments")
    assert response.status_code == 200
    assert "The payment list is unavailable" in response.text


async def test_api_rejecting_the_token_ends_the_session(admin: httpx.AsyncClient, fake: FakeApi):
    fake.revoked = True  # say, the admin's key was revoked and the API now answers 401
    response = await admin.get("/dashboard/customers")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fcustomers&reason=expired"
    assert "dashboard_session=" in response.headers["set-cookie"] and "Max-Age=0" in response.headers["set-cookie"]
