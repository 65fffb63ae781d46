"""Turn an email kind plus its context into a subject, a text body and an HTML body, and then a MIME message.

Each kind is one folder under app/templates/ (subject.txt, body.txt, body.html); the folders are the list of kinds.
"""

from __future__ import annotations

import email.policy
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_date
from billing_shared.clock import ensure_utc, now
from billing_shared.money import format_money
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateNotFound,
    Undefined,
    UndefinedError,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_LOCALE = "en_US"
_TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str = "application/pdf"


def _locale(context: Context) -> str:
    return context.get("locale") or DEFAULT_LOCALE


def _fail_if_undefined(value: Any) -> None:
    # Filters receive StrictUndefined as a plain argument; make it fail as loudly as {{ missing }} would.
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()


@pass_context
def money_filter(context: Context, amount: Any, currency: Any) -> str:
    """{{ 4999 | money("USD") }} -> "$49.99", in the context's locale."""
    _fail_if_undefined(amount)
    _fail_if_undefined(currency)
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValueError(f"money needs an integer count of minor units, got {amount!r}")
    return format_money(amount, currency, _locale(context))


@pass_context
def date_filter(context: Context, value: Any) -> str:
    """{{ due_date | date }} -> "March 3, 2027"; datetimes are shown as their UTC calendar date."""
    _fail_if_undefined(value)
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        value = ensure_utc(value).date()
    if not isinstance(value, date):
        raise ValueError(f"date needs a date, a datetime or an ISO 8601 string, got {value!r}")
    return format_date(value, format="long", locale=_locale(context))


def _build_environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        # Templates ship with the code: compiled once and kept (no stat per render), except while editing locally.
        auto_reload=os.environ.get("ENVIRONMENT", "local").lower() == "local",
        cache_size=-1,
        # Only HTML is escaped: escaping the text part would show customers "&lt;" literally.
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["money"] = money_filter
    environment.filters["date"] = date_filter
    return environment


_environment = _build_environment()


@cache
def email_kinds() -> frozenset[str]:
    """Every kind that has a complete template folder (read once: the folders ship with the code)."""
    return frozenset(
        folder.name
        for folder in TEMPLATES_DIR.iterdir()
        if folder.is_dir() and all((folder / name).is_file() for name in _TEMPLATE_FILES)
    )


def _one_line(subject: str) -> str:
    # A header cannot span lines, and a stray newline from a customer-supplied name must not split it.
    return re.sub(r"\s+", " ", subject).strip()


def render_email(kind: str, context: Mapping[str, Any]) -> RenderedEmail:
    """Render one kind; ValueError for an unknown kind or a context that lacks what the templates use."""
    if kind not in email_kinds():
        raise ValueError(f"unknown email kind {kind!r}; known kinds: {', '.join(sorted(email_kinds()))}")
    try:
        subject, text, html = (
            _environment.get_template(f"{kind}/{name}").render(context) for name in _TEMPLATE_FILES
        )
    except UndefinedError as exc:
        raise ValueError(f"email {kind!r} cannot be rendered: {exc.message}") from exc
    except TemplateNotFound as exc:  # a folder removed between the check and the render
        raise ValueError(f"unknown email kind {kind!r}") from exc
    return RenderedEmail(subject=_one_line(subject), text=text, html=html)


def build_message(
    rendered: RenderedEmail,
    sender: str,
    recipient: str,
    attachments: Sequence[Attachment] = (),
    *,
    message_id: str | None = None,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """A multipart/alternative (text, then HTML) message; with attachments it is wrapped in multipart/mixed.

    Pass a message_id derived from the event id so a resent email carries the same Message-ID.
    """
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(ensure_utc(sent_at or now()))
    message["Message-ID"] = message_id or make_msgid(domain=_domain_of(sender))
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content, maintype=maintype, subtype=subtype or "octet-stream", filename=attachment.filename
        )
    return message


class _HeaderClasses(HeaderRegistry):
    """The standard registry, but each header's class is made once: HeaderRegistry builds a new class with
    type() for every header of every message, some 40 % of the time it takes to build and flatten an email."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type] = {}

    def __getitem__(self, name: str) -> type:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


_POLICY = email.policy.default.clone(header_factory=_HeaderClasses())


def _domain_of(address: str) -> str:
    # Without a domain make_msgid would ask DNS for this host's FQDN, which can stall.
    _, at, domain = address.rstrip(">").rpartition("@")
    return domain if at and domain else "localhost"
