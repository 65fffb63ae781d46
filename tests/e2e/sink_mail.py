"""Reading what customers were sent: the SMTP sink's mails, classified by kind and counted.

A mail's kind comes from its Message-ID (`<event_id.template@domain>`, fixed per event so that a resend
after a crash is recognisably the same mail), else from its subject.
"""

from __future__ import annotations

import re
from collections import Counter
from email.message import EmailMessage
from typing import Any

KINDS = (
    "welcome", "invoice_finalized", "invoice_paid", "payment_failed", "payment_recovered", "final_notice",
    "subscription_suspended", "payment_uncollected", "subscription_canceled", "credit_note_issued",
    "payment_refunded",
)

_MESSAGE_ID = re.compile(r"<[0-9a-f-]{36}\.(?P<kind>[a-z_]+)@")
_SUBJECTS = (
    ("welcome", re.compile(r"^welcome", re.I)),
    ("invoice_paid", re.compile(r"^receipt", re.I)),
    ("invoice_finalized", re.compile(r"^invoice ", re.I)),
    ("payment_failed", re.compile(r"payment .*failed", re.I)),
    ("payment_recovered", re.compile(r"payment .*went through", re.I)),
    ("final_notice", re.compile(r"final notice", re.I)),
    ("subscription_suspended", re.compile(r"suspended", re.I)),
    ("payment_uncollected", re.compile(r"payment .*could not be collected", re.I)),
    ("subscription_canceled", re.compile(r"cancel", re.I)),
    ("credit_note_issued", re.compile(r"credit note", re.I)),
    ("payment_refunded", re.compile(r"^refund of", re.I)),
)


def kind_of(message: EmailMessage) -> str:
    match = _MESSAGE_ID.match(str(message["Message-ID"] or "").strip())
    if match and match["kind"] in KINDS:
        return match["kind"]
    subject = str(message["Subject"] or "")
    for kind, pattern in _SUBJECTS:
        if pattern.search(subject):
            return kind
    return "other"


def text_of(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    return body.get_content() if body is not None else ""


def kinds(messages: list[EmailMessage]) -> Counter[str]:
    """How many mails of each kind (every mail the sink received, duplicates included)."""
    return Counter(kind_of(m) for m in messages)


def distinct_kinds(messages: list[EmailMessage]) -> Counter[str]:
    """How many different mails of each kind: a resend with the same Message-ID counts once."""
    seen: dict[str, str] = {}
    for m in messages:
        seen.setdefault(str(m["Message-ID"]).strip(), kind_of(m))
    return Counter(seen.values())


def of_kind(messages: list[EmailMessage], kind: str) -> list[EmailMessage]:
    return [m for m in messages if kind_of(m) == kind]


def wait_mail(stack: Any, to: str, expected: dict[str, int], timeout: float = 30) -> list[EmailMessage]:
    """Wait until `to` has received at least the expected number of mails of each kind; return all its mails."""

    def arrived() -> list[EmailMessage] | None:
        mails = stack.emails(to=to)
        counts = kinds(mails)
        return mails if all(counts[k] >= n for k, n in expected.items()) else None

    try:
        return stack.wait_for(arrived, timeout=timeout, interval=0.2, what=f"mails {expected} to {to}")
    except AssertionError:
        got = dict(kinds(stack.emails(to=to)))
        raise AssertionError(f"timed out waiting for mails {expected} to {to}; it has {got}") from None


def assert_exactly(stack: Any, to: str, expected: dict[str, int], timeout: float = 30) -> None:
    """`to` receives exactly these mails: none missing (waited for), none doubled, nothing else."""
    want = {k: v for k, v in expected.items() if v}
    wait_mail(stack, to, want, timeout)
    got = {k: v for k, v in kinds(stack.emails(to=to)).items() if v}
    assert got == want, f"mails to {to}: expected {want}, got {got}"
