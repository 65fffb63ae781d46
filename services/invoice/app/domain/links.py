"""Signed links to an invoice's page and PDF: HMAC-SHA256 over the invoice id and an expiry time.

A link token is `<expires_unix>.<base64url mac>`; it opens one invoice until it expires, without a login,
so emails and the dashboard can link to the page. Nothing else can be derived from it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid


def _mac(secret: str, invoice_id: uuid.UUID, expires: int) -> str:
    message = f"invoice-link:v1:{invoice_id}:{expires}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: str, invoice_id: uuid.UUID, expires: int) -> str:
    if not secret:
        raise ValueError("a link secret is required")
    return f"{int(expires)}.{_mac(secret, invoice_id, int(expires))}"


def verify(secret: str, invoice_id: uuid.UUID, token: str, now: int) -> bool:
    """True if `token` was signed for this invoice with this secret and has not expired at `now`."""
    expires_text, _, mac = token.partition(".")
    # ASCII only: str.isdigit() accepts '²', which int() refuses, and compare_digest refuses non-ASCII text.
    if not token.isascii() or not expires_text.isdigit() or not mac or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    if expires <= now:
        return False
    return hmac.compare_digest(mac, _mac(secret, invoice_id, expires))
