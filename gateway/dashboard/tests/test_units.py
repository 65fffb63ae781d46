"""Pure parts: chart geometry, the figure formulas, the session codec and the API client's failures."""

from __future__ import annotations

from datetime import date

import httpx
import pytest

from dashboard import charts
from dashboard.overview import recovery_rate
from dashboard.rendering import safe_url
from dashboard.security import safe_next
from dashboard.session import Session, SessionCodec
from dashboard.upstream import ApiClient, UpstreamError, UpstreamUnauthorized


def test_revenue_chart_has_one_bar_per_day_and_the_tallest_fills_the_plot():
    today = date(2025, 3, 1)
    collected = [{"date": "2025-02-28", "currency": "USD", "amount": 500},
                 {"date": "2025-03-01", "currency": "USD", "amount": 1000},
                 {"date": "2025-01-01", "currency": "USD", "amount": 99999}]  # outside the window
    [chart] = charts.daily_revenue_charts(collected, today, days=30)
    assert chart.bars[-1].label == "2025-03-01"
    tallest = chart.bars[-1]
    assert tallest.height == pytest.approx(chart.baseline_y - charts.TOP)
    assert chart.bars[-2].height == pytest.approx(tallest.height / 2)
    assert chart.bars[-1].value == "$10.00"
    assert all(bar.height == 0 for bar in chart.bars[:-2])


def test_revenue_chart_covers_every_date_the_30_day_payment_counts_touch():
    # The payment service counts created_at > now - 30 days: 2025-01-30 (from now's time of day) to 2025-03-01.
    collected = [{"date": "2025-01-30", "currency": "USD", "amount": 700},
                 {"date": "2025-01-29", "currency": "USD", "amount": 99999}]  # before the counts' window
    [chart] = charts.daily_revenue_charts(collected, date(2025, 3, 1), days=30)
    assert len(chart.bars) == 31
    assert chart.bars[0].label == "2025-01-30" and chart.bars[0].value == "$7.00"
    assert not chart.empty


def test_revenue_charts_show_every_currency_alphabetically_and_ignore_malformed_rows():
    collected = [{"date": "2025-03-01", "currency": "EUR", "amount": 10},
                 {"date": "2025-03-01", "currency": "USD", "amount": 20},
                 {"date": "2025-03-01", "currency": "USD", "amount": 1.5},
                 {"date": "not a date", "currency": "USD", "amount": 5}]
    eur, usd = charts.daily_revenue_charts(collected, date(2025, 3, 1))
    assert "EUR" in eur.title and "USD" in usd.title
    assert usd.bars[-1].value == "$0.20"


def test_revenue_charts_never_rank_amounts_of_different_currencies():
    # Minor units do not compare across currencies: 10 billion rupiah is less than 5 million US cents.
    collected = [{"date": "2025-03-01", "currency": currency, "amount": amount} for currency, amount in
                 (("USD", 5_000_000), ("EUR", 4_000_000), ("KRW", 10_000_000), ("IDR", 10_000_000_000))]
    shown = charts.daily_revenue_charts(collected, date(2025, 3, 1))
    assert [chart.title for chart in shown] == [
        f"Revenue collected per day ({currency})" for currency in ("EUR", "IDR", "KRW", "USD")
    ]


def test_empty_revenue_chart_is_marked_empty():
    [chart] = charts.daily_revenue_charts([{"date": "2025-03-01", "currency": "USD", "amount": 0}], date(2025, 3, 1))
    assert chart.empty


def test_status_chart_scales_bars_to_the_largest_count():
    chart = charts.status_chart("t", {"succeeded": 100, "failed": 25, "pending": 0, "unknown": "x"})
    assert [b.label for b in chart.bars] == ["succeeded", "failed", "pending"]
    assert chart.bars[1].width == pytest.approx(chart.bars[0].width / 4)


@pytest.mark.parametrize(
    ("stats", "shown"),
    [({"recovered": 3, "exhausted": 1}, "75.0%"), ({"recovered": 0, "exhausted": 0}, "—"),
     ({"recovery_rate": 0.5}, "50.0%"), ({"recovery_rate": 62.5}, "62.5%"), ({}, None)],
)
def test_recovery_rate(stats, shown):
    assert recovery_rate(stats) == shown


def test_session_codec_round_trip_and_tamper_detection():
    codec = SessionCodec("a-secret-of-sufficient-length-123456")
    session = Session.new(token="tok")
    value = codec.dumps(session)
    assert codec.loads(value) == session
    payload, stamp, signature = value.split(".")
    middle = len(signature) // 2  # fully significant (a base64 tail char may carry padding bits)
    flipped = "A" if signature[middle] != "A" else "B"
    assert codec.loads(f"{payload}.{stamp}.{signature[:middle]}{flipped}{signature[middle + 1:]}") is None
    assert codec.loads(f"{payload[:-1]}{'A' if payload[-1] != 'A' else 'B'}.{stamp}.{signature}") is None
    assert SessionCodec("another-secret-of-sufficient-length").loads(value) is None
    assert codec.csrf_valid(session, codec.csrf_token(session))
    assert not codec.csrf_valid(Session.new(), codec.csrf_token(session))
    assert not codec.csrf_valid(None, codec.csrf_token(session))


@pytest.mark.parametrize(
    ("target", "kept"),
    [("/dashboard/invoices?status=open", True), ("/dashboard", True), ("/dashboardx", False),
     ("//evil.example", False), ("https://evil.example/dashboard", False), ("/dashboard\\..\\x", False), (None, False)],
)
def test_only_dashboard_paths_follow_sign_in(target, kept):
    assert (safe_next(target) == target) is kept


@pytest.mark.parametrize(
    ("link", "kept"),
    [("/invoices/1?token=t", True), ("https://pay.example/i/1", True), ("//evil.example", False),
     ("/\\evil.example", False), ("/\t/evil.example", False), ("/in\nvoices", False),
     ("javascript:alert(1)", False), ("", False), (None, False)],
)
def test_only_http_links_and_paths_on_this_site_are_kept_from_api_answers(link, kept):
    assert safe_url(link) == (link if kept else None)


async def test_unreachable_api_is_an_upstream_error_not_a_crash():
    async with httpx.AsyncClient(base_url="http://127.0.0.1:9") as http:
        with pytest.raises(UpstreamError) as raised:
            await ApiClient(http).get("/api/invoices/stats", "token")
    assert raised.value.status is None and raised.value.message == "not reachable"


async def test_api_answers_are_classified():
    def answer(request: httpx.Request) -> httpx.Response:
        return {
            "/401": httpx.Response(401, json={"error": {"message": "expired"}}),
            "/500": httpx.Response(500, text="oops"),
            "/html": httpx.Response(200, text="<html>"),
            "/list": httpx.Response(200, json={"data": [{"id": 1}], "has_more": True, "next_cursor": "c1"}),
        }[request.url.path]

    async with httpx.AsyncClient(base_url="http://api", transport=httpx.MockTransport(answer)) as http:
        api = ApiClient(http)
        with pytest.raises(UpstreamUnauthorized):
            await api.get("/401", "t")
        with pytest.raises(UpstreamError, match="HTTP 500"):
            await api.get("/500", "t")
        with pytest.raises(UpstreamError, match="other than JSON"):
            await api.get("/html", "t")
        page = await api.get_page("/list", "t")
    assert page.data == [{"id": 1}] and page.next_cursor == "c1"
