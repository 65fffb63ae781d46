"""Lines from subscription facts: the plan for its period (zero in a trial), and proration lines as sent."""

from datetime import UTC, datetime

from billing_shared.contracts import ProrationLine

from app.domain.lines import period_line, plan_description, proration_lines

JAN_1 = datetime(2027, 1, 1, tzinfo=UTC)
FEB_1 = datetime(2027, 2, 1, tzinfo=UTC)


def test_plan_descriptions_name_the_cadence():
    assert plan_description("Pro", "month") == "Pro (per month)"
    assert plan_description("Pro", "month", 3) == "Pro (every 3 months)"
    assert plan_description(" ", "year") == "Subscription (per year)"
    assert plan_description("Pro", "month", trial=True) == "Pro (free trial)"


def test_a_period_line_bills_the_plan_for_the_period():
    line = period_line(
        plan_name="Pro", amount=4999, currency="usd", interval="month", interval_count=1,
        period_start=JAN_1, period_end=FEB_1,
    )
    assert (line.amount, line.currency, line.kind, line.period_start, line.period_end) == (4999, "USD", "subscription", JAN_1, FEB_1)


def test_a_trial_period_is_billed_at_zero():
    line = period_line(
        plan_name="Pro", amount=4999, currency="USD", interval="month", interval_count=1,
        period_start=JAN_1, period_end=FEB_1, trial=True,
    )
    assert line.amount == 0


def test_proration_lines_keep_their_sign_and_drop_an_unusable_period():
    lines = proration_lines(
        [
            ProrationLine(description="Unused Pro", amount=-3387, currency="USD", period_start=JAN_1, period_end=FEB_1),
            ProrationLine(description="Team", amount=6774, currency="USD", period_start=FEB_1, period_end=JAN_1),
        ],
        "USD",
    )
    assert [(line.amount, line.kind) for line in lines] == [(-3387, "proration"), (6774, "proration")]
    assert (lines[0].period_start, lines[1].period_start) == (JAN_1, None)
