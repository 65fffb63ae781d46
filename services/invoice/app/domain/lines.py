"""The line items an invoice gets from subscription facts: the plan for a period, and proration lines."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from billing_shared.contracts import ProrationLine

from app.domain.invoices import LineItem


def plan_description(plan_name: str, interval: str, interval_count: int = 1, trial: bool = False) -> str:
    name = plan_name.strip() or "Subscription"
    cadence = f"per {interval}" if interval_count == 1 else f"every {interval_count} {interval}s"
    return f"{name} ({'free trial' if trial else cadence})"


def period_line(
    *,
    plan_name: str,
    amount: int,
    currency: str,
    interval: str,
    interval_count: int,
    period_start: datetime,
    period_end: datetime,
    trial: bool = False,
) -> LineItem:
    """The plan for one period; a trial period is billed at zero (the invoice is then settled at once)."""
    return LineItem(
        description=plan_description(plan_name, interval, interval_count, trial),
        amount=0 if trial else amount,
        currency=currency,
        period_start=period_start,
        period_end=period_end,
        kind="subscription",
    )


def proration_lines(lines: Iterable[ProrationLine], currency: str) -> list[LineItem]:
    """Proration lines as sent by the subscription service (negative = credit for unused time).

    A line whose period is missing or inverted keeps its amount and loses the period, rather than the
    whole event being refused.
    """
    items = []
    for line in lines:
        start, end = line.period_start, line.period_end
        if start is None or end is None or end <= start:
            start = end = None
        items.append(
            LineItem(
                description=line.description,
                amount=line.amount,
                currency=line.currency or currency,
                period_start=start,
                period_end=end,
                kind="proration",
            )
        )
    return items
