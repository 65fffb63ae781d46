"""Invoice lifecycle: the statuses and the one table of transitions allowed between them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


# The only place that says which status may follow which. Paid and void are final; an uncollectible
# invoice can still be paid late (or voided), as with Stripe.
ALLOWED_TRANSITIONS: Mapping[InvoiceStatus, frozenset[InvoiceStatus]] = MappingProxyType(
    {
        InvoiceStatus.DRAFT: frozenset({InvoiceStatus.OPEN, InvoiceStatus.VOID}),
        InvoiceStatus.OPEN: frozenset(
            {InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE}
        ),
        InvoiceStatus.UNCOLLECTIBLE: frozenset({InvoiceStatus.PAID, InvoiceStatus.VOID}),
        InvoiceStatus.PAID: frozenset(),
        InvoiceStatus.VOID: frozenset(),
    }
)


class InvalidTransition(ValueError):
    """A status change the lifecycle does not allow."""


class NotVoidable(InvalidTransition):
    """Voiding refused because money was already collected on the invoice."""


def _as_status(value: InvoiceStatus | str) -> InvoiceStatus:
    try:
        return InvoiceStatus(value)
    except ValueError:
        known = ", ".join(status.value for status in InvoiceStatus)
        raise InvalidTransition(f"unknown invoice status {value!r}: expected one of {known}") from None


def can_transition(current: InvoiceStatus | str, target: InvoiceStatus | str) -> bool:
    return _as_status(target) in ALLOWED_TRANSITIONS[_as_status(current)]


def transition(current: InvoiceStatus | str, target: InvoiceStatus | str) -> InvoiceStatus:
    """Return the target status if the table allows current -> target; InvalidTransition otherwise."""
    source, destination = _as_status(current), _as_status(target)
    allowed = ALLOWED_TRANSITIONS[source]
    if destination not in allowed:
        if allowed:
            options = ", ".join(sorted(status.value for status in allowed))
            hint = f"a {source.value} invoice can only become {options}"
        else:
            hint = f"{source.value} is a final status"
        raise InvalidTransition(
            f"cannot move an invoice from {source.value} to {destination.value}: {hint}"
        )
    return destination


def check_voidable(status: InvoiceStatus | str, amount_paid: int) -> None:
    """Refuse to void an invoice that has collected any money; its remedy is a credit note and refund."""
    if isinstance(amount_paid, bool) or not isinstance(amount_paid, int) or amount_paid < 0:
        raise ValueError(f"amount_paid must be a non-negative int of minor units, got {amount_paid!r}")
    current = _as_status(status)
    if current is InvoiceStatus.PAID:
        raise NotVoidable("cannot void a paid invoice: issue a credit note (and refund) instead")
    if amount_paid > 0:
        raise NotVoidable(
            f"cannot void a {current.value} invoice that has {amount_paid} minor units paid: "
            "a successful payment was recorded, issue a credit note (and refund) instead"
        )
    # Checked after the payment rule so the message names the money, not just the table.
    transition(current, InvoiceStatus.VOID)
