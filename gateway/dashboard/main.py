"""Builds the dashboard app: routes under /dashboard, security headers, and the error pages.

uvicorn runs `dashboard.main:app` (built on first access) or `--factory dashboard.main:create_app`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from billing_shared.auth import TokenVerifier
from billing_shared.logs import configure_logging, correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .rendering import build_templates, render
from .routes import auth, invoices, lists, operations, overview
from .security import (
    PREFIX,
    DashboardState,
    Forbidden,
    LoginRequired,
    clear_session_cookie,
    login_url,
    path_and_query,
    state_of,
)
from .session import SessionCodec
from .settings import DashboardSettings
from .upstream import CORRELATION_HEADER, ApiClient, UpstreamError, UpstreamUnauthorized

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def create_app(
    settings: DashboardSettings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """The dashboard app; `transport` lets tests put a fake API behind the client."""
    settings = settings or DashboardSettings()
    configure_logging("dashboard", settings.log_level)
    # One log line per API call would drown the dashboard's own; failures are logged by ApiClient.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    http = httpx.AsyncClient(
        base_url=settings.api_base_url, timeout=settings.dashboard_api_timeout_s, transport=transport
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await http.aclose()

    app = FastAPI(title="Billing dashboard", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    app.state.dashboard = DashboardState(
        settings=settings,
        api=ApiClient(http),
        codec=SessionCodec(settings.dashboard_session_secret),
        verifier=TokenVerifier(settings.public_key_pem(), settings.jwt_issuer, settings.jwt_audience),
        templates=build_templates(),
    )
    _install_security_headers(app)
    _install_error_pages(app)
    for module in (auth, overview, lists, invoices, operations):
        app.include_router(module.router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/health", include_in_schema=False)
    @app.get(f"{PREFIX}/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": "dashboard"}

    return app


def _install_security_headers(app: FastAPI) -> None:
    @app.middleware("http")
    async def _security_headers(request: Request, call_next):
        # The gateway's correlation id travels on to every API call this request makes.
        cid = request.headers.get(CORRELATION_HEADER) or uuid.uuid4().hex
        token = correlation_id.set(cid[:128])
        try:
            response = await call_next(request)
        except Exception:
            # Caught here rather than by an exception handler: Starlette runs a handler for Exception outside
            # every middleware, so its page would miss the headers below and its log line the correlation id.
            log.exception("unhandled error on %s %s", request.method, request.url.path)
            response = render(request, "error.html", {"message": "Something went wrong."}, status_code=500)
        finally:
            correlation_id.reset(token)
        response.headers[CORRELATION_HEADER] = cid[:128]
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith(f"{PREFIX}/static/"):
            # Pages show customers' data: never keep them in a shared or back-button cache.
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def _install_error_pages(app: FastAPI) -> None:
    # The 500 page of an unhandled error is rendered by _security_headers, inside the headers and correlation id.
    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        response = RedirectResponse(login_url(exc.next_path, exc.reason), status_code=303)
        if exc.reason:
            clear_session_cookie(response, state_of(request))
        return response

    @app.exception_handler(UpstreamUnauthorized)
    async def _upstream_unauthorized(request: Request, exc: UpstreamUnauthorized) -> Response:
        here = path_and_query(request) if request.method == "GET" else None
        return await _login_required(request, LoginRequired(here, reason="expired"))

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "forbidden.html", {"message": exc.message}, status_code=403)

    @app.exception_handler(UpstreamError)
    async def _upstream_error(request: Request, exc: UpstreamError) -> Response:
        return render(request, "unavailable.html", {"error": exc, "title": "Unavailable"}, status_code=502)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith(PREFIX):
            return JSONResponse({"error": {"code": "validation_error", "message": "invalid request"}}, status_code=422)
        return render(request, "not_found.html", {"message": "That address is not valid."}, status_code=404)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return render(request, "not_found.html", {"message": "There is no such page."}, status_code=404)
        return render(request, "error.html", {"message": str(exc.detail)}, status_code=exc.status_code)


def __getattr__(name: str) -> FastAPI:
    # `dashboard.main:app` is built on first access, so importing this module reads no environment.
    if name == "app":
        global app
        app = create_app()
        return app
    raise AttributeError(name)
