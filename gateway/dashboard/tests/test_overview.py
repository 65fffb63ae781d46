"""The overview shows the key figures from each service's stats, and survives any one service being down."""

from __future__ import annotations

import re

import httpx

from .fake_api import FakeApi, days_ago


def figure(html: str, title: str) -> str:
    match = re.search(
        rf'data-figure="{re.escape(title)}".*?<span class="figure-value[^"]*">(.*?)</span>', html, re.DOTALL
    )
    assert match, f"no figure {title!r} on the page"
    return match.group(1).strip()


async def test_overview_shows_the_key_figures(admin: httpx.AsyncClient):
    html = (await admin.get("/dashboard")).text
    assert figure(html, "MRR") == "$12,345.00"
    assert figure(html, "Active subscriptions") == "42"
    assert figure(html, "Open invoices") == "7"
    assert figure(html, "Overdue invoices") == "2"
    assert figure(html, "Failed payments (30 days)") == "9"
    assert figure(html, "Dunning recovery rate") == "75.0%"
    assert "outstanding $349.93" in html


async def test_overview_asks_for_payments_of_the_last_30_days(admin: httpx.AsyncClient, fake: FakeApi):
    await admin.get("/dashboard")
    assert ("GET", "/api/payments/stats", {"days": "30"}) in fake.calls


async def test_overview_draws_revenue_per_day_and_payments_by_status_as_svg(admin: httpx.AsyncClient):
    html = (await admin.get("/dashboard")).text
    assert html.count("<svg") == 3  # USD and EUR revenue, payments by status
    assert "Revenue collected per day (USD)" in html and "Revenue collected per day (EUR)" in html
    assert f"<title>{days_ago(2)}: $4,999.00</title>" in html
    assert f"<title>{days_ago(1)}: €99.00</title>" in html
    assert "<title>succeeded: 118</title>" in html and "<title>failed: 9</title>" in html


async def test_one_service_down_blanks_its_card_only(admin: httpx.AsyncClient, fake: FakeApi):
    fake.broken.add("/api/dunning/stats")
    response = await admin.get("/dashboard")
    assert response.status_code == 200
    assert figure(response.text, "Dunning recovery rate") == "unavailable"
    assert figure(response.text, "MRR") == "$12,345.00"


async def test_payments_down_blanks_its_card_and_charts(admin: httpx.AsyncClient, fake: FakeApi):
    fake.broken.add("/api/payments/stats")
    response = await admin.get("/dashboard")
    assert response.status_code == 200
    assert figure(response.text, "Failed payments (30 days)") == "unavailable"
    assert "<svg" not in response.text
    assert figure(response.text, "Open invoices") == "7"


async def test_every_service_down_still_renders_the_page(admin: httpx.AsyncClient, fake: FakeApi):
    fake.broken.update(fake.stats)
    response = await admin.get("/dashboard")
    assert response.status_code == 200
    assert response.text.count("figure-value unavailable") == 6


async def test_recovery_rate_is_a_dash_before_any_case_closed(admin: httpx.AsyncClient, fake: FakeApi):
    fake.stats["/api/dunning/stats"] = {"open": 3, "recovered": 0, "exhausted": 0, "recovery_rate": None}
    assert figure((await admin.get("/dashboard")).text, "Dunning recovery rate") == "—"


async def test_mrr_in_several_currencies_lists_each(admin: httpx.AsyncClient, fake: FakeApi):
    fake.stats["/api/subscriptions/stats"]["mrr"] = [
        {"currency": "USD", "amount": 1000}, {"currency": "JPY", "amount": 5000}
    ]
    assert figure((await admin.get("/dashboard")).text, "MRR") == "$10.00 · ¥5,000"
