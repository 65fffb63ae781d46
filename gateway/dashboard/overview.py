"""The overview's key figures, each loaded on its own so one unavailable service blanks one card only."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from . import charts
from .rendering import money
from .upstream import ApiClient, settle

WINDOW_DAYS = 30


@dataclass
class Card:
    title: str
    value: str | None = None
    detail: str = ""
    link: str | None = None
    css_class: str = ""

    @property
    def unavailable(self) -> bool:
        return self.value is None


@dataclass
class Overview:
    cards: list[Card]
    revenue_charts: list[charts.BarChart] = field(default_factory=list)
    status_chart: charts.BarChart | None = None
    outstanding: list[str] = field(default_factory=list)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _amounts(rows: Any) -> list[str]:
    if not isinstance(rows, list):
        return []
    return [money(r.get("amount"), r.get("currency")) for r in rows if isinstance(r, dict)]


def recovery_rate(stats: dict[str, Any]) -> str | None:
    """Recovered cases over closed ones (recovered + exhausted), as a percentage; '—' before any closed."""
    recovered, exhausted = _int(stats.get("recovered")), _int(stats.get("exhausted"))
    if recovered is not None and exhausted is not None:
        closed = recovered + exhausted
        return f"{100 * recovered / closed:.1f}%" if closed else "—"
    rate = stats.get("recovery_rate")
    if isinstance(rate, (int, float)) and not isinstance(rate, bool):
        return f"{100 * rate if rate <= 1 else rate:.1f}%"
    return None


async def _safely(call) -> dict[str, Any] | None:
    body, _ = await settle(call)
    return body if isinstance(body, dict) else None


async def load_overview(api: ApiClient, token: str, today: date) -> Overview:
    subs, invoices, payments, dunning = await asyncio.gather(
        _safely(api.get("/api/subscriptions/stats", token)),
        _safely(api.get("/api/invoices/stats", token)),
        _safely(api.get("/api/payments/stats", token, days=WINDOW_DAYS)),
        _safely(api.get("/api/dunning/stats", token)),
    )
    mrr = Card("MRR", link="/dashboard/subscriptions?status=active")
    active = Card("Active subscriptions", link="/dashboard/subscriptions?status=active")
    if subs is not None:
        amounts = _amounts(subs.get("mrr"))
        mrr.value = " · ".join(amounts) if amounts else ("0" if isinstance(subs.get("mrr"), list) else None)
        counts = subs.get("counts") if isinstance(subs.get("counts"), dict) else {}
        active.value = str(_int(counts.get("active")) or 0)
        past_due = _int(counts.get("past_due"))
        active.detail = f"{past_due} past due" if past_due else ""

    open_invoices = Card("Open invoices", link="/dashboard/invoices?status=open")
    overdue = Card("Overdue invoices", link="/dashboard/invoices?status=open")
    outstanding: list[str] = []
    if invoices is not None:
        counts = invoices.get("counts") if isinstance(invoices.get("counts"), dict) else {}
        open_invoices.value = str(_int(counts.get("open")) or 0)
        outstanding = _amounts(invoices.get("outstanding"))
        open_invoices.detail = ("outstanding " + " · ".join(outstanding)) if outstanding else ""
        overdue_count = _int(invoices.get("overdue"))
        overdue.value = str(overdue_count) if overdue_count is not None else None
        overdue.css_class = "warn" if overdue_count else ""

    failed = Card(f"Failed payments ({WINDOW_DAYS} days)", link="/dashboard/payments?status=failed")
    revenue_charts: list[charts.BarChart] = []
    status_chart = None
    if payments is not None:
        failed_count = _int(payments.get("failed"))
        failed.value = str(failed_count) if failed_count is not None else None
        failed.css_class = "warn" if failed_count else ""
        succeeded = _int(payments.get("succeeded"))
        failed.detail = f"{succeeded} succeeded" if succeeded is not None else ""
        collected = payments.get("collected") if isinstance(payments.get("collected"), list) else []
        revenue_charts = charts.daily_revenue_charts(collected, today, WINDOW_DAYS)
        status_chart = charts.status_chart(f"Payments by status ({WINDOW_DAYS} days)", payments)

    recovery = Card("Dunning recovery rate", link="/dashboard/dunning")
    if dunning is not None:
        recovery.value = recovery_rate(dunning)
        open_cases = _int(dunning.get("open"))
        recovery.detail = f"{open_cases} open cases" if open_cases is not None else ""

    return Overview(
        cards=[mrr, active, open_invoices, overdue, failed, recovery],
        revenue_charts=revenue_charts,
        status_chart=status_chart,
        outstanding=outstanding,
    )
