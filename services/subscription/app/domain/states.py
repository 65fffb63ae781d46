"""Subscription statuses and the one table of transitions allowed between them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class SubscriptionStatus(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    CANCELED = "canceled"


_S = SubscriptionStatus

ALLOWED_TRANSITIONS: Mapping[SubscriptionStatus, frozenset[SubscriptionStatus]] = MappingProxyType(
    {
        _S.TRIALING: frozenset({_S.ACTIVE, _S.PAUSED, _S.CANCELED}),
        _S.ACTIVE: frozenset({_S.PAST_DUE, _S.PAUSED, _S.SUSPENDED, _S.CANCELED}),
        _S.PAST_DUE: frozenset({_S.ACTIVE, _S.SUSPENDED, _S.CANCELED}),
        # trialing: resumed inside its trial; past_due: resumed while dunning chases an invoice of before the
        # pause; suspended: dunning gave up on such an invoice meanwhile.
        _S.PAUSED: frozenset({_S.TRIALING, _S.ACTIVE, _S.PAST_DUE, _S.SUSPENDED, _S.CANCELED}),
        # paused: the suspension of a paused subscription ends (its debt paid or voided) back in its pause.
        _S.SUSPENDED: frozenset({_S.ACTIVE, _S.PAUSED, _S.CANCELED}),
        _S.CANCELED: frozenset(),
    }
)


class InvalidTransition(ValueError):
    """A status change the transition table does not allow."""

    def __init__(self, current: SubscriptionStatus, target: SubscriptionStatus) -> None:
        allowed = sorted(ALLOWED_TRANSITIONS[current])
        options = ", ".join(allowed) if allowed else "nothing (it is final)"
        super().__init__(f"a {current} subscription cannot become {target}; it can become {options}")
        self.current = current
        self.target = target


def parse_status(value: str | SubscriptionStatus) -> SubscriptionStatus:
    try:
        return SubscriptionStatus(value)
    except ValueError:
        allowed = ", ".join(s.value for s in SubscriptionStatus)
        raise ValueError(f"unknown subscription status {value!r}: expected one of {allowed}") from None


def can_transition(current: str | SubscriptionStatus, target: str | SubscriptionStatus) -> bool:
    return parse_status(target) in ALLOWED_TRANSITIONS[parse_status(current)]


def transition(current: str | SubscriptionStatus, target: str | SubscriptionStatus) -> SubscriptionStatus:
    """The target status if the table allows it (staying in the same status is not a transition)."""
    current_status, target_status = parse_status(current), parse_status(target)
    if target_status not in ALLOWED_TRANSITIONS[current_status]:
        raise InvalidTransition(current_status, target_status)
    return target_status


def is_final(status: str | SubscriptionStatus) -> bool:
    return not ALLOWED_TRANSITIONS[parse_status(status)]
