"""Subscription statuses move only along the transition table; canceled is final."""

import pytest

from app.domain.states import (
    ALLOWED_TRANSITIONS,
    InvalidTransition,
    SubscriptionStatus,
    can_transition,
    is_final,
    transition,
)

S = SubscriptionStatus

EXPECTED_TABLE = {
    S.TRIALING: {S.ACTIVE, S.PAUSED, S.CANCELED},
    S.ACTIVE: {S.PAST_DUE, S.PAUSED, S.SUSPENDED, S.CANCELED},
    S.PAST_DUE: {S.ACTIVE, S.SUSPENDED, S.CANCELED},
    S.PAUSED: {S.TRIALING, S.ACTIVE, S.PAST_DUE, S.SUSPENDED, S.CANCELED},
    S.SUSPENDED: {S.ACTIVE, S.PAUSED, S.CANCELED},
    S.CANCELED: set(),
}

ALL_PAIRS = [(current, target) for current in S for target in S]


def test_statuses_are_their_lowercase_names() -> None:
    assert [s.value for s in S] == ["trialing", "active", "past_due", "paused", "suspended", "canceled"]
    assert S.PAST_DUE == "past_due"


def test_table_covers_every_status_exactly_as_specified() -> None:
    assert {k: set(v) for k, v in ALLOWED_TRANSITIONS.items()} == EXPECTED_TABLE


def test_table_cannot_be_modified() -> None:
    with pytest.raises(TypeError):
        ALLOWED_TRANSITIONS[S.CANCELED] = frozenset({S.ACTIVE})  # type: ignore[index]


@pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p[1] in EXPECTED_TABLE[p[0]]])
def test_allowed_transition_returns_the_target(current: S, target: S) -> None:
    assert can_transition(current, target)
    assert transition(current, target) is target


@pytest.mark.parametrize(("current", "target"), [p for p in ALL_PAIRS if p[1] not in EXPECTED_TABLE[p[0]]])
def test_disallowed_transition_raises_invalid_transition(current: S, target: S) -> None:
    assert not can_transition(current, target)
    with pytest.raises(InvalidTransition) as raised:
        transition(current, target)
    assert (raised.value.current, raised.value.target) == (current, target)


def test_past_due_subscription_recovers_to_active() -> None:
    assert transition("past_due", "active") is S.ACTIVE


def test_canceled_is_final_and_says_so() -> None:
    assert is_final(S.CANCELED)
    assert not any(is_final(s) for s in S if s is not S.CANCELED)
    with pytest.raises(InvalidTransition, match="a canceled subscription cannot become active; it can become nothing"):
        transition(S.CANCELED, S.ACTIVE)


def test_error_lists_what_is_allowed() -> None:
    expected = "a suspended subscription cannot become past_due; it can become active, canceled, paused"
    with pytest.raises(InvalidTransition, match=expected):
        transition("suspended", "past_due")


def test_invalid_transition_is_a_value_error() -> None:
    assert issubclass(InvalidTransition, ValueError)


def test_staying_in_the_same_status_is_not_a_transition() -> None:
    with pytest.raises(InvalidTransition):
        transition(S.ACTIVE, S.ACTIVE)


@pytest.mark.parametrize(("current", "target"), [("expired", "active"), ("active", "ended"), ("ACTIVE", "paused")])
def test_unknown_status_is_a_value_error_naming_it(current: str, target: str) -> None:
    with pytest.raises(ValueError, match="unknown subscription status") as raised:
        can_transition(current, target)
    assert not isinstance(raised.value, InvalidTransition)
