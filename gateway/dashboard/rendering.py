"""The Jinja2 environment (autoescaped everywhere) and the small filters the templates use."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlencode

from billing_shared.money import format_money
from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChainableUndefined, Environment, FileSystemLoader

from .security import PREFIX, state_of

TEMPLATES_DIR = Path(__file__).parent / "templates"


def money(amount: Any, currency: Any) -> str:
    if isinstance(amount, bool) or not isinstance(amount, int) or not isinstance(currency, str):
        return "—"
    try:
        return format_money(amount, currency)
    except ValueError:
        return f"{amount} {currency}"


def when(value: Any) -> str:
    """An ISO timestamp from an API as 'YYYY-MM-DD HH:MM UTC' (anything else shown as it came)."""
    if not value:
        return "—"
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if parsed.tzinfo is not None:
        return parsed.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return parsed.strftime("%Y-%m-%d %H:%M")


def short_id(value: Any) -> str:
    """The random tail of a UUIDv7: its head is a timestamp, shared by ids made in the same minute."""
    text = str(value or "")
    return f"…{text[-8:]}" if len(text) > 8 else text or "—"


def safe_url(value: Any) -> str | None:
    """A link taken from an API response, kept only if it is http(s) or a path on this site."""
    if not isinstance(value, str) or not value:
        return None
    # Browsers read a backslash as a slash and drop tabs and newlines, so /\evil.example or /<tab>/evil.example
    # would lead to another site just as //evil.example does.
    if "\\" in value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        return None
    if value.startswith(("https://", "http://")) or (value.startswith("/") and not value.startswith("//")):
        return value
    return None


def first_of(obj: Any, *keys: str) -> Any:
    """The first present, non-empty field among `keys` (the APIs name some fields differently)."""
    if not isinstance(obj, Mapping):
        return None
    for key in keys:
        value = obj.get(key)
        if value not in (None, ""):
            return value
    return None


def with_query(path: str, **params: Any) -> str:
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(clean)}" if clean else path


def build_templates() -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,  # every template, whatever its extension: customer data is never markup
        # API responses are read tolerantly: a missing field renders empty rather than failing the page.
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, when=when, short_id=short_id, safe_url=safe_url)
    env.globals.update(prefix=PREFIX, first_of=first_of, with_query=with_query)
    return Jinja2Templates(env=env)


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, status_code: int = 200):
    ctx = {"admin": None, "csrf": None, "active": None, "notice": None}
    ctx.update(context or {})
    return state_of(request).templates.TemplateResponse(request, template, ctx, status_code=status_code)
