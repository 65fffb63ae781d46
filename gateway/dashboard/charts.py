"""Chart geometry for server-rendered SVG: pure functions from figures to rectangles and labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from billing_shared.money import format_money


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: str
    css_class: str = ""


@dataclass(frozen=True)
class AxisLabel:
    x: float
    y: float
    text: str
    anchor: str = "middle"


@dataclass(frozen=True)
class BarChart:
    title: str
    width: int
    height: int
    bars: list[Bar]
    labels: list[AxisLabel]
    baseline_y: float
    plot_left: float
    plot_right: float
    empty: bool


WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64.0, 8.0, 12.0, 28.0


def daily_revenue_charts(collected: Iterable[Mapping[str, object]], end: date, days: int = 30) -> list[BarChart]:
    """One column chart per currency, alphabetical, of the amounts collected on each date of the last `days` days.

    The payment service counts the `days` * 24 hours up to now, which touch `days` + 1 UTC dates: the oldest and
    the newest bars are each part of a day, so the bars cover the same payments as the counts beside them.
    Currencies are never ranked by amount: minor units of different currencies do not compare.
    """
    totals: dict[str, dict[date, int]] = {}
    for row in collected:
        try:
            day = date.fromisoformat(str(row["date"])[:10])
            currency, amount = str(row["currency"]), row["amount"]
        except (KeyError, ValueError):
            continue
        if not isinstance(amount, int) or isinstance(amount, bool):
            continue
        per_day = totals.setdefault(currency, {})
        per_day[day] = per_day.get(day, 0) + amount
    start = end - timedelta(days=days)
    window = [start + timedelta(days=i) for i in range(days + 1)]
    return [
        column_chart(
            f"Revenue collected per day ({currency})",
            [(d.isoformat(), per_day.get(d, 0), _money(per_day.get(d, 0), currency)) for d in window],
            axis_format=lambda v, c=currency: _money(v, c),
        )
        for currency, per_day in sorted(totals.items())
    ]


def _money(amount: int, currency: str) -> str:
    try:
        return format_money(amount, currency)
    except ValueError:
        return f"{amount} {currency}"


def column_chart(title: str, points: Sequence[tuple[str, int, str]], axis_format=str) -> BarChart:
    """Vertical bars for (label, value, shown value) points; the tallest bar fills the plot height."""
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    peak = max((value for _, value, _ in points), default=0)
    slot = plot_width / max(len(points), 1)
    gap = min(4.0, slot * 0.2)
    bars = []
    for i, (label, value, shown) in enumerate(points):
        height = plot_height * value / peak if peak > 0 else 0.0
        bars.append(
            Bar(
                x=round(LEFT + i * slot + gap / 2, 2),
                y=round(baseline - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                label=label,
                value=shown,
            )
        )
    labels = [
        AxisLabel(LEFT - 6, TOP + 10, axis_format(peak), "end"),
        AxisLabel(LEFT - 6, baseline, axis_format(0), "end"),
    ]
    if points:
        for i in sorted({0, len(points) // 2, len(points) - 1}):
            labels.append(AxisLabel(round(LEFT + (i + 0.5) * slot, 2), HEIGHT - 8, points[i][0][5:] or points[i][0]))
    return BarChart(title, WIDTH, HEIGHT, bars, labels, baseline, LEFT, WIDTH - RIGHT, empty=peak <= 0)


STATUS_ORDER = ("succeeded", "failed", "pending", "unknown")


def status_chart(title: str, counts: Mapping[str, object]) -> BarChart:
    """Horizontal bars, one per payment status, proportional to its count."""
    rows = [(status, counts.get(status)) for status in STATUS_ORDER]
    values = [(status, value) for status, value in rows if isinstance(value, int) and not isinstance(value, bool)]
    height = 36 * max(len(values), 1) + 8
    left, right = 96.0, 64.0
    plot_width = WIDTH - left - right
    peak = max((value for _, value in values), default=0)
    bars, labels = [], []
    for i, (status, value) in enumerate(values):
        y = 8 + i * 36
        width = plot_width * value / peak if peak > 0 else 0.0
        bars.append(Bar(left, y, round(width, 2), 24, status, str(value), css_class=f"bar-{status}"))
        labels.append(AxisLabel(left - 8, y + 17, status, "end"))
        labels.append(AxisLabel(round(left + width + 6, 2), y + 17, str(value), "start"))
    return BarChart(title, WIDTH, height, bars, labels, height, left, WIDTH - right, empty=peak <= 0)
