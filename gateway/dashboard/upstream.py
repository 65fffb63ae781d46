"""The services' public APIs, called through the gateway with the signed-in admin's bearer token."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from collections.abc import Awaitable
from typing import Any, TypeVar

import httpx
from billing_shared.logs import correlation_id

log = logging.getLogger(__name__)

T = TypeVar("T")

CORRELATION_HEADER = "X-Correlation-ID"


class UpstreamError(Exception):
    """An API answered with an error or not at all; `status` is None when it was not reachable."""

    def __init__(self, path: str, status: int | None, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.status = status
        self.message = message


class UpstreamUnauthorized(UpstreamError):
    """The API refused the session's token (expired or revoked): the admin must sign in again."""


@dataclass(frozen=True)
class Page:
    """One page of a cursor-paginated list: its rows and the cursor of the next page, if any."""

    data: list[dict[str, Any]]
    next_cursor: str | None

    @property
    def has_more(self) -> bool:
        return self.next_cursor is not None


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error") or {}
        return str(error.get("message") or error.get("code") or response.reason_phrase)
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"


def _headers(bearer: str | None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    cid = correlation_id.get()
    if cid:
        headers[CORRELATION_HEADER] = cid
    return headers


class ApiClient:
    """A thin JSON client: every failure becomes an UpstreamError the pages can show as 'unavailable'."""

    def __init__(self, http: httpx.AsyncClient):
        self.http = http

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        api_key: str | None = None,
    ) -> Any:
        bearer = api_key if api_key is not None else token
        headers = _headers(bearer)
        clean_params = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        try:
            response = await self.http.request(method, path, params=clean_params, json=json, headers=headers)
        except httpx.HTTPError as exc:
            # The exception's name only: its text can quote the request's headers, the bearer secret included.
            log.warning("upstream %s %s unreachable: %s", method, path, type(exc).__name__)
            raise UpstreamError(path, None, "not reachable") from None
        if response.status_code == 401:
            raise UpstreamUnauthorized(path, 401, _error_message(response))
        if response.status_code >= 400:
            log.warning("upstream %s %s answered %s", method, path, response.status_code)
            raise UpstreamError(path, response.status_code, _error_message(response))
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(path, response.status_code, "answered with something other than JSON") from None

    async def get(self, path: str, token: str, **params: Any) -> Any:
        return await self.request("GET", path, token=token, params=params)

    async def get_page(self, path: str, token: str, **params: Any) -> Page:
        body = await self.get(path, token, **params)
        if not isinstance(body, dict) or not isinstance(body.get("data"), list):
            raise UpstreamError(path, None, "answered with an unexpected shape")
        next_cursor = body.get("next_cursor") if body.get("has_more", True) else None
        return Page(data=body["data"], next_cursor=next_cursor or None)

    async def fetch_raw(self, path: str, token: str) -> httpx.Response:
        """A non-JSON document (an invoice's HTML or PDF), returned whole; small by nature."""
        try:
            response = await self.http.get(path, headers=_headers(token))
        except httpx.HTTPError:
            raise UpstreamError(path, None, "not reachable") from None
        if response.status_code == 401:
            raise UpstreamUnauthorized(path, 401, _error_message(response))
        if response.status_code >= 400:
            raise UpstreamError(path, response.status_code, _error_message(response))
        return response


async def settle(call: Awaitable[T]) -> tuple[T | None, UpstreamError | None]:
    """Await one API call: its result, or the error that makes its part of a page 'unavailable'.

    An UpstreamUnauthorized is not settled: the session is over and the whole page goes to sign-in.
    """
    try:
        return await call, None
    except UpstreamUnauthorized:
        raise
    except UpstreamError as exc:
        return None, exc
