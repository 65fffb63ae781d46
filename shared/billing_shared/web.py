"""The FastAPI app every service builds on: errors, correlation ids, health, readiness, metrics.

`create_service_app` wires the service's database, outbox relay and event consumer into the app's
lifespan, so `uvicorn app.main:app` runs all of it (each part can be switched off per replica).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

import aio_pika
import asyncpg
from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from tenacity import AsyncRetrying, stop_after_delay, wait_exponential

from . import dlq
from .auth import AdminPrincipal, CurrentPrincipal, TokenVerifier
from .consumer import EventConsumer, Handler
from .db import Database
from .errors import ERROR_RESPONSES, ApiError
from .logs import configure_logging, correlation_id
from .relay import OutboxRelay
from .retention import Keep, PlumbingRetention
from .settings import ServiceSettings

log = logging.getLogger(__name__)

REQUESTS = Counter("http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
LATENCY = Histogram("http_request_seconds", "HTTP request latency", ["service", "method", "route"])


def _validation_error_body(exc: RequestValidationError) -> dict[str, Any]:
    details = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        details.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid"), "type": err.get("type")})
    first = details[0] if details else {"field": None, "message": "invalid request"}
    message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return {"error": {"code": "validation_error", "message": message, "field": first["field"], "details": details}}


def _unavailable(what: str, exc: Exception) -> JSONResponse:
    """A dependency is down: 503 (retry later), not 500, and the client learns nothing internal."""
    log.warning("%s unavailable: %r", what, exc)
    return JSONResponse(
        {"error": {"code": "service_unavailable", "message": f"{what} is unavailable, retry later"}},
        status_code=503,
        headers={"Retry-After": "1"},
    )


def _value_refused() -> JSONResponse:
    # SQLSTATE class 22, data exception: Postgres refused a value the client sent (a NUL byte in text,
    # a number out of range).
    return JSONResponse(
        {"error": {"code": "invalid_request", "message": "a value in the request cannot be stored"}}, status_code=422
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_validation_error_body(exc), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            {"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
        if sqlstate.startswith("22"):
            return _value_refused()
        if exc.connection_invalidated or sqlstate.startswith(("08", "57P")):
            return _unavailable("database", exc)
        log.exception("database error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": {"code": "internal_error", "message": "internal error"}}, status_code=500)

    @app.exception_handler(asyncpg.exceptions.DataError)
    async def _driver_data_error(request: Request, exc: asyncpg.exceptions.DataError) -> JSONResponse:
        # The same refusal on a statement run on the driver connection (db.driver_connection), which
        # SQLAlchemy does not wrap in a DBAPIError.
        return _value_refused()

    @app.exception_handler(OSError)
    async def _connection_error(request: Request, exc: OSError) -> JSONResponse:
        return _unavailable("a dependency", exc)

    @app.exception_handler(PoolTimeout)
    async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
        return _unavailable("database", exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": {"code": "internal_error", "message": "internal error"}}, status_code=500)


MAX_BODY_BYTES = 1024 * 1024

# What the gateway keeps of a client's correlation id (gateway/nginx/common.conf); anything else is replaced. It goes
# into every event the request emits, as an AMQP short string (at most 255 bytes): a longer one could never be
# published and would hold up the outbox relay.
_CORRELATION_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def _correlation_id(sent: bytes) -> str:
    return sent.decode("ascii") if _CORRELATION_ID.fullmatch(sent) else uuid.uuid4().hex


class EdgeMiddleware:
    """Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware on every request): refuses
    bodies over 1 MiB, carries the correlation id, records metrics."""

    def __init__(self, app, service: str):
        self.app = app
        self.service = service

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        cid = _correlation_id(headers.get(b"x-correlation-id", b""))
        cid_header = (b"x-correlation-id", cid.encode("latin-1"))
        token = correlation_id.set(cid)
        started = time.perf_counter()
        status = 500

        async def send_with_correlation(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), cid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_correlation)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope["method"]
            REQUESTS.labels(self.service, method, path, str(status)).inc()
            LATENCY.labels(self.service, method, path).observe(time.perf_counter() - started)
            correlation_id.reset(token)

    @staticmethod
    def _refusal(scope, headers: dict[bytes, bytes]) -> JSONResponse | None:
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            # The gateway caps bodies too; this keeps a service safe when reached directly.
            return JSONResponse(
                {"error": {"code": "request_too_large", "message": "request body is larger than 1 MiB"}},
                status_code=413,
            )
        return None


def install_observability(app: FastAPI, service: str) -> None:
    app.add_middleware(EdgeMiddleware, service=service)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)


def settle_heap() -> None:
    """Put what start-up built (modules, mappers, models, routes, pools: ~110,000 tracked objects) out of the
    cyclic garbage collector's reach. Each full collection would otherwise walk all of it, stalling the event
    loop for 50-100 ms on this machine kind and putting every request and event of that moment in the tail;
    frozen, a full collection walks only what requests and events left behind."""
    gc.collect()
    gc.freeze()


class ServiceRuntime:
    """What a running service holds: its database, token verifier, relay, consumer and extra tasks."""

    def __init__(
        self,
        settings: ServiceSettings,
        handlers: dict[str, Handler] | None = None,
        bindings: Mapping[str, Sequence[str]] | None = None,
        retired: Sequence[str] = (),
    ):
        self.settings = settings
        self.handlers = handlers or {}
        self.bindings = bindings
        self.retired = retired
        self.db = Database(
            settings.database_url,
            settings.schema,
            producer=settings.service_name,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        self.relay: OutboxRelay | None = None
        self.consumer: EventConsumer | None = None
        # One broker connection to publish on and another to consume on, as RabbitMQ advises: under a memory or
        # disk alarm the broker stops reading from publishing connections, and a consumer sharing one could not
        # ack what it has handled, so the queues that would free the memory could not drain.
        self.publishing: aio_pika.abc.AbstractRobustConnection | None = None
        self.consuming: aio_pika.abc.AbstractRobustConnection | None = None
        self.background: list[asyncio.Task] = []

    async def wait_for_database(self) -> None:
        async for attempt in AsyncRetrying(stop=stop_after_delay(60), wait=wait_exponential(0.2, max=3), reraise=True):
            with attempt:
                async with self.db.engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))

    async def connect_broker(self, role: str) -> aio_pika.abc.AbstractRobustConnection:
        name = f"{self.settings.service_name}-{role}"
        retrying = AsyncRetrying(stop=stop_after_delay(60), wait=wait_exponential(0.2, max=3), reraise=True)
        async for attempt in retrying:
            with attempt:
                properties = {"connection_name": name}
                return await aio_pika.connect_robust(self.settings.amqp_url, client_properties=properties)
        raise AssertionError("unreachable: AsyncRetrying re-raises the last error")

    @property
    def connections(self) -> list[aio_pika.abc.AbstractRobustConnection]:
        return [c for c in (self.publishing, self.consuming) if c is not None]

    async def start(self) -> None:
        s = self.settings
        await self.wait_for_database()
        if s.run_relay:
            self.publishing = await self.connect_broker("relay")
        if s.run_consumer and self.handlers:
            self.consuming = await self.connect_broker("consumer")
        if s.run_relay:
            self.relay = OutboxRelay(
                self.db,
                s.amqp_url,
                s.exchange,
                database_url=s.database_url,
                batch_size=s.relay_batch_size,
                poll_interval_s=s.relay_poll_interval_s,
                publish_copies=s.relay_publish_copies,
                connection=self.publishing,
            )
            await self.relay.start()
        if s.run_consumer and self.handlers:
            self.consumer = EventConsumer(
                self.db,
                service=s.service_name,
                amqp_url=s.amqp_url,
                exchange=s.exchange,
                dead_letter_exchange=s.dead_letter_exchange,
                handlers=self.handlers,
                bindings=self.bindings,
                retired=self.retired,
                prefetch=s.prefetch,
                delivery_limit=s.delivery_limit,
                retry_attempts=s.handler_retry_attempts,
                retry_initial_s=s.handler_retry_initial_s,
                retry_max_s=s.handler_retry_max_s,
                redelivery_backoff_s=s.redelivery_backoff_s,
                redelivery_backoff_max_s=s.redelivery_backoff_max_s,
                outage_retry_s=s.outage_retry_s,
                awaiting_retry_s=s.awaiting_retry_s,
                batch_max=s.consumer_batch_max,
                batch_concurrency=s.consumer_batch_concurrency,
                stop_grace_s=s.consumer_stop_grace_s,
                connection=self.consuming,
            )
            await self.consumer.start()
        if s.run_scheduler:
            keep = Keep(
                outbox=timedelta(days=s.outbox_keep_days),
                inbox=timedelta(days=s.inbox_keep_days),
                idempotency=timedelta(hours=s.idempotency_keep_hours),
            )
            self.spawn(PlumbingRetention(self.db, keep).run(s.retention_interval_s), f"{s.service_name}-retention")

    def spawn(self, coro, name: str) -> None:
        self.background.append(asyncio.create_task(coro, name=name))

    async def stop(self) -> None:
        for task in self.background:
            task.cancel()
        for task in self.background:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.consumer:
            await self.consumer.stop()
        if self.relay:
            await self.relay.stop()
        for connection in self.connections:
            await connection.close()
        await self.db.dispose()

    async def ready(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with self.db.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), 2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"unavailable: {type(exc).__name__}"
        if self.connections:
            # A robust connection never reports itself closed while it reconnects: ask whether it is up.
            up = all(not c.is_closed and c.connected.is_set() for c in self.connections)
            checks["broker"] = "ok" if up else "unavailable"
        return checks


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter] = (),
    handlers: dict[str, Handler] | None = None,
    bindings: Mapping[str, Sequence[str]] | None = None,
    retired: Sequence[str] = (),
    on_start: Callable[[ServiceRuntime], Any] | None = None,
    resources: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    description: str = "",
) -> FastAPI:
    """Build a service's app: routers, error shape, observability, lifespan with relay and consumer.

    `resources` (an async context manager factory) is entered on the running loop before the consumer starts
    and exited after it has stopped: clients the handlers use (a gateway, SMTP, HTTP pools) live inside it.
    `bindings` narrows what the consumer hears of an event type to some routing patterns (see EventConsumer);
    `retired` names the event types an earlier version handled and this one no longer does (their bindings go).
    """
    service = settings.service_name
    configure_logging(service, settings.log_level)
    runtime = ServiceRuntime(settings, handlers, bindings, retired)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if resources is not None:
                await stack.enter_async_context(resources())
            await runtime.start()
            stack.push_async_callback(runtime.stop)
            if on_start is not None:
                result = on_start(runtime)
                if asyncio.iscoroutine(result):
                    await result
            settle_heap()
            log.info("%s started", service)
            yield

    app = FastAPI(
        title=title,
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        # Served below, to authenticated callers only: every request outside /health is authenticated.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.token_verifier = TokenVerifier(settings.public_key_pem(), settings.jwt_issuer, settings.jwt_audience)
    install_error_handlers(app)
    install_observability(app, service)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get(f"/api/{service}/openapi.json", include_in_schema=False)
    async def openapi_document(principal: CurrentPrincipal) -> JSONResponse:
        """The service's OpenAPI document, for any authenticated caller (it lists every admin operation too)."""
        return JSONResponse(app.openapi())

    @app.get("/ready", include_in_schema=False)
    async def ready() -> JSONResponse:
        checks = await runtime.ready()
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    app.include_router(dead_letter_router(settings), responses=ERROR_RESPONSES)
    for router in routers:
        app.include_router(router, responses=ERROR_RESPONSES)
    return app


def dead_letter_router(settings: ServiceSettings) -> APIRouter:
    service = settings.service_name
    router = APIRouter(prefix=f"/api/{service}/dead-letters", tags=["operations"])

    @router.get("", summary=f"List dead letters of the {service} service (admin)")
    async def list_dead_letters(admin: AdminPrincipal, limit: int = 50) -> dict[str, Any]:
        if not 1 <= limit <= 500:
            raise ApiError(422, "validation_error", "limit must be between 1 and 500", field="limit")
        letters = await dlq.list_dead_letters(settings.amqp_url, service, limit)
        return {"data": [letter.__dict__ for letter in letters]}

    @router.post(
        "/replay",
        summary=f"Replay dead letters of the {service} service (admin)",
        description="Letters older than the inbox keeps (INBOX_KEEP_DAYS) are kept back and listed in `kept`: "
        "one handled after all would be applied twice. Check the service's own tables that its event was not "
        "applied, then replay it with force=true.",
    )
    async def replay_dead_letters(
        admin: AdminPrincipal,
        event_id: Annotated[list[str] | None, Query(description="replay only these (repeatable)")] = None,
        force: bool = False,
        event_ids: Annotated[list[str] | None, Body(description="replay only these (a JSON list)")] = None,
    ) -> dict[str, Any]:
        # The ids come in the query (?event_id=..., as the dashboard tells an operator to send them) or as a JSON
        # list. Naming none replays every letter, so an empty list is refused: with force=true it would replay even
        # the letters kept back for being older than the inbox keeps.
        if event_ids is not None and not event_ids:
            raise ApiError(422, "validation_error", "name at least one event id, or send no body to replay all",
                           field="event_ids")
        chosen = {*(event_id or ()), *(event_ids or ())} or None
        kept: list[dlq.TooOld] = []
        count = await dlq.replay_dead_letters(
            settings.amqp_url, service, chosen,
            max_age=timedelta(days=settings.inbox_keep_days), force=force, skipped=kept,
        )
        return {
            "replayed": count,
            "kept": [
                {"event_id": k.event_id, "age_days": None if k.age is None else round(k.age / timedelta(days=1), 1)}
                for k in kept
            ],
        }

    return router
