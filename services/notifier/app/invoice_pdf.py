"""Fetch an invoice's PDF from the invoice service's public API.

With the signed link its invoice event carries (`invoice_pdf_url`): that link opens that one PDF and nothing
else, so the notifier needs no credential. Without one (an event from an invoice service that signed none),
with an API key if one is configured, exchanged at POST /api/auth/token; the access token is cached until
shortly before it expires. The signed link's path and query are asked of `base_url` (the gateway as the
notifier reaches it), not of the public host the link names, which may not be reachable from here.

One pooled HTTP client lives as long as the app (`start` in the lifespan, `aclose` at shutdown): building
a client per fetch cost ~25 ms CPU (SSL context) each time. Every failure is logged and answered with
None: an email is never held back for its attachment.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

_EXPIRY_MARGIN_S = 30.0


class InvoicePdfClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 5.0,
        max_connections: int = 16,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        # The whole fetch is bounded by timeout_s; a dead peer is noticed sooner at connect.
        self._timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 2.0))
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections, keepalive_expiry=30.0
        )
        self._transport = transport
        self._api_key = api_key
        self._http: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._token_expires = 0.0  # time.monotonic() deadline
        self._token_lock = asyncio.Lock()

    def start(self) -> None:
        """Open the pooled client (idempotent; `fetch` opens it on first use otherwise)."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                base_url=self._base_url, timeout=self._timeout, limits=self._limits, transport=self._transport
            )

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    async def fetch(self, invoice_id: uuid.UUID, signed_url: str | None = None) -> bytes | None:
        """The PDF bytes, or None (logged) when the invoice service cannot give them now."""
        try:
            self.start()
            http = self._http
            assert http is not None
            if signed_url:
                link = urlsplit(signed_url)
                response = await http.get(f"{link.path}?{link.query}" if link.query else link.path)
            elif self._api_key:
                response = await self._get_pdf(http, invoice_id, await self._access_token(http))
                if response.status_code == 401:  # revoked or expired early: exchange the key once more
                    response = await self._get_pdf(http, invoice_id, await self._access_token(http, force=True))
            else:
                log.info("invoice %s: no signed link and no API key, sending the link only", invoice_id)
                return None
            response.raise_for_status()
            if not response.content.startswith(b"%PDF"):
                raise ValueError(f"not a PDF (content-type {response.headers.get('content-type')!r})")
            return response.content
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("invoice %s: PDF not attached, sending the link only: %r", invoice_id, exc)
            return None

    @staticmethod
    async def _get_pdf(http: httpx.AsyncClient, invoice_id: uuid.UUID, token: str) -> httpx.Response:
        return await http.get(f"/api/invoices/{invoice_id}.pdf", headers={"Authorization": f"Bearer {token}"})

    async def _access_token(self, http: httpx.AsyncClient, force: bool = False) -> str:
        async with self._token_lock:  # concurrent emails share one exchange
            if force or self._token is None or time.monotonic() >= self._token_expires:
                response = await http.post("/api/auth/token", headers={"Authorization": f"Bearer {self._api_key}"})
                response.raise_for_status()
                body = response.json()
                self._token = str(body["access_token"])
                lifetime = float(body.get("expires_in", 300))
                self._token_expires = time.monotonic() + max(lifetime - _EXPIRY_MARGIN_S, lifetime / 2)
            return self._token
