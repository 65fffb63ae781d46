"""A fake of the services' public APIs (the shapes the dashboard reads), with switches to break parts of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from billing_shared import clock
from billing_shared.auth import Principal, TokenVerifier, issue_token
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

ISSUER, AUDIENCE = "billing-customer", "billing-api"
SERVICES = ("customer", "payment", "subscription", "invoice", "dunning", "notifier")

ADMIN_KEY = "sk_test_admin"
USER_KEY = "sk_test_user"
FORGED_ADMIN_KEY = "sk_test_forged"  # answered with an admin token signed by a key the dashboard does not trust
SCRIPT_NAME = "<script>alert('pwned')</script> Ltd"


def days_ago(n: int) -> str:
    return (clock.now().date() - timedelta(days=n)).isoformat()


def _id(n: int) -> str:
    # Time-ordered like UUIDv7: the fake's cursors compare as strings.
    return f"0190{n:04x}-0000-7000-8000-{n:012x}"


@dataclass
class FakeApi:
    private_key: str
    other_private_key: str
    public_key: str
    broken: set[str] = field(default_factory=set)
    revoked: bool = False
    correlation_ids: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    replays: list[tuple[str, Any]] = field(default_factory=list)
    too_old: dict[str, list[str]] = field(default_factory=dict)  # event ids a replay keeps back, by service
    admin_id: uuid.UUID = field(default_factory=uuid.uuid4)
    user_id: uuid.UUID = field(default_factory=uuid.uuid4)

    def __post_init__(self) -> None:
        self.customers = [
            {"id": _id(i), "email": f"customer{i}@example.com", "name": f"Customer {i:02d}", "role": "user",
             "created_at": "2025-01-02T10:00:00Z", "updated_at": "2025-01-02T10:00:00Z"}
            for i in range(1, 31)
        ]
        self.customers[2]["name"] = SCRIPT_NAME
        self.invoices = [
            {"id": _id(100 + i), "number": f"INV-2025-{i:04d}", "customer_id": _id(1 + i % 3),
             "customer_name": f"Customer {1 + i % 3:02d}", "customer_email": f"customer{1 + i % 3}@example.com",
             "status": "open" if i % 2 else "paid", "currency": "USD", "total": 4999, "amount_due": 4999 if i % 2 else 0,
             "amount_paid": 0 if i % 2 else 4999, "due_at": "2025-02-01T00:00:00Z", "created_at": "2025-01-02T10:00:00Z",
             "lines": [{"description": "Pro plan, monthly", "amount": 4999, "currency": "USD",
                        "period_start": "2025-01-01T00:00:00Z", "period_end": "2025-02-01T00:00:00Z"}]}
            for i in range(1, 6)
        ]
        self.invoices[0]["html_url"] = f"/invoices/{_id(101)}?token=signed"
        self.invoices[0]["pdf_url"] = f"/api/invoices/{_id(101)}.pdf?token=signed"
        self.subscriptions = [
            {"id": _id(200 + i), "customer_id": _id(i), "plan_id": _id(300),
             "plan": {"id": _id(300), "name": "Pro", "amount": 4999, "currency": "USD", "interval": "month",
                      "interval_count": 1, "trial_days": 0},
             "status": "active" if i != 3 else "past_due", "cancel_at_period_end": False,
             "current_period_start": "2025-01-01T00:00:00Z", "current_period_end": "2025-02-01T00:00:00Z",
             "created_at": "2025-01-01T00:00:00Z"}
            for i in range(1, 5)
        ]
        self.payments = [
            {"id": _id(400 + i), "customer_id": _id(i), "invoice_id": _id(100 + i), "amount": 4999, "currency": "USD",
             "status": "succeeded" if i % 2 else "failed", "failure_code": None if i % 2 else "card_declined",
             "created_at": "2025-01-02T10:00:00Z"}
            for i in range(1, 5)
        ]
        self.cases = [
            {"id": _id(500), "customer_id": _id(2), "invoice_id": _id(102), "payment_id": _id(402), "amount": 4999,
             "currency": "USD", "status": "open", "failures": 2, "attempts_allowed": 4,
             "next_retry_at": "2025-01-09T00:00:00Z", "waiting_for_payment_method": False,
             "last_failure_code": "insufficient_funds", "opened_at": "2025-01-02T10:00:00Z", "closed_at": None,
             "attempts": [
                 {"attempt": 2, "trigger": "schedule", "outcome": "failed", "due_at": "2025-01-04T00:00:00Z",
                  "dispatched_at": "2025-01-04T00:00:01Z", "failed_at": "2025-01-04T00:00:02Z",
                  "failure_code": "insufficient_funds", "failure_message": None},
                 {"attempt": 1, "trigger": "initial", "outcome": "failed", "due_at": None,
                  "failed_at": "2025-01-02T10:00:00Z", "failure_code": "card_declined"},
                 {"attempt": 3, "trigger": "schedule", "outcome": "pending", "due_at": "2025-01-09T00:00:00Z"},
             ]}
        ]
        self.dead_letters = {name: [] for name in SERVICES}
        self.dead_letters["payment"] = [
            {"event_id": str(uuid.uuid4()), "type": "invoice.finalized", "reason": "delivery_limit",
             "queue": "payment", "deaths": 6, "body": {}}
        ]
        for payment in self.payments:
            payment["failure_message"] = "Your card was declined." if payment["failure_code"] else None
        self.stats = {
            "/api/subscriptions/stats": {"mrr": [{"currency": "USD", "amount": 1234500}], "counts": {"active": 42, "past_due": 3}},
            "/api/invoices/stats": {"counts": {"open": 7, "paid": 120}, "overdue": 2,
                                    "outstanding": [{"currency": "USD", "amount": 34993}]},
            "/api/payments/stats": {"days": 30, "succeeded": 118, "failed": 9, "unknown": 1, "pending": 2,
                                    "collected": [{"date": days_ago(2), "currency": "USD", "amount": 499900},
                                                  {"date": days_ago(1), "currency": "USD", "amount": 149700},
                                                  {"date": days_ago(1), "currency": "EUR", "amount": 9900}]},
            "/api/dunning/stats": {"open": 4, "recovered": 6, "exhausted": 2, "canceled": 1, "recovery_rate": 0.75},
        }

    def token(self, role: str, *, forged: bool = False, ttl: timedelta = timedelta(minutes=15)) -> str:
        customer_id = self.admin_id if role == "admin" else self.user_id
        key = self.other_private_key if forged else self.private_key
        return issue_token(key, customer_id=customer_id, role=role, issuer=ISSUER, audience=AUDIENCE, ttl=ttl)

    def paths_called(self) -> list[str]:
        return [path for _, path, _ in self.calls]


def _page(rows: list[dict[str, Any]], cursor: str | None, limit: int) -> dict[str, Any]:
    after = [r for r in rows if cursor is None or r["id"] > cursor]
    data = after[:limit]
    more = len(after) > limit
    return {"data": data, "has_more": more, "next_cursor": data[-1]["id"] if more else None}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_fake_api(fake: FakeApi) -> FastAPI:
    app = FastAPI()
    verifier = TokenVerifier(fake.public_key, ISSUER, AUDIENCE)

    @app.middleware("http")
    async def record_and_break(request: Request, call_next):
        fake.calls.append((request.method, request.url.path, dict(request.query_params)))
        fake.correlation_ids.append(request.headers.get("x-correlation-id", ""))
        if request.url.path in fake.broken:
            return _error(503, "unavailable", "service is down")
        if request.url.path != "/api/auth/token":
            header = request.headers.get("authorization", "")
            try:
                principal: Principal = verifier.verify(header.removeprefix("Bearer "))
            except Exception:
                return _error(401, "unauthorized", "invalid token")
            if fake.revoked:
                return _error(401, "unauthorized", "token revoked")
            if not principal.is_admin:
                return _error(403, "forbidden", "admin role required")
        return await call_next(request)

    @app.post("/api/auth/token")
    async def create_token(request: Request):
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        tokens = {ADMIN_KEY: lambda: fake.token("admin"), USER_KEY: lambda: fake.token("user"),
                  FORGED_ADMIN_KEY: lambda: fake.token("admin", forged=True)}
        if key not in tokens:
            return _error(401, "unauthorized", "unknown or revoked API key")
        return {"access_token": tokens[key](), "token_type": "bearer", "expires_in": 900}

    def listing(rows):
        async def endpoint(request: Request):
            q = request.query_params
            selected = [r for r in rows if all(
                not q.get(k) or str(r.get(k)) == q[k] for k in ("status", "customer_id", "invoice_id"))]
            if q.get("q"):
                selected = [r for r in selected if q["q"].lower() in (r["name"] + r["email"]).lower()]
            return _page(selected, q.get("cursor"), int(q.get("limit", 20)))
        return endpoint

    for path, rows in (("/api/customers", fake.customers), ("/api/invoices", fake.invoices),
                       ("/api/subscriptions", fake.subscriptions), ("/api/payments", fake.payments),
                       ("/api/dunning/cases", fake.cases)):
        app.add_api_route(path, listing(rows), methods=["GET"])

    def stats(path):
        async def endpoint():
            return fake.stats[path]
        return endpoint

    for path in fake.stats:
        app.add_api_route(path, stats(path), methods=["GET"])

    def detail(rows, what):
        async def endpoint(item_id: str):
            found = next((r for r in rows if r["id"] == item_id), None)
            return found if found is not None else _error(404, "not_found", f"{what} not found")
        return endpoint

    app.add_api_route("/api/customers/{item_id}", detail(fake.customers, "customer"), methods=["GET"])
    app.add_api_route("/api/dunning/cases/{item_id}", detail(fake.cases, "dunning case"), methods=["GET"])

    @app.get("/api/invoices/{invoice_id}.pdf")
    async def read_invoice_pdf(invoice_id: str):
        return Response(b"%PDF-1.7\n% fake invoice " + invoice_id.encode(), media_type="application/pdf")

    app.add_api_route("/api/invoices/{item_id}", detail(fake.invoices, "invoice"), methods=["GET"])

    @app.get("/invoices/{invoice_id}")
    async def read_invoice_page(invoice_id: str):
        return HTMLResponse(f"<html><body><h1>Invoice page {invoice_id}</h1><script>bad()</script></body></html>")

    for service in SERVICES:
        def dead_letter_routes(service=service):
            async def list_letters(limit: int = 50):
                return {"data": fake.dead_letters[service][:limit]}

            async def replay(request: Request):
                body = await request.body()
                fake.replays.append((service, body.decode() or None))
                letters, too_old = fake.dead_letters[service], fake.too_old.get(service, [])
                fake.dead_letters[service] = [letter for letter in letters if letter["event_id"] in too_old]
                kept = [{"event_id": event_id, "age_days": 31.0} for event_id in too_old]
                return {"replayed": len(letters) - len(kept), "kept": kept}

            app.add_api_route(f"/api/{service}/dead-letters", list_letters, methods=["GET"])
            app.add_api_route(f"/api/{service}/dead-letters/replay", replay, methods=["POST"])

        dead_letter_routes()

    return app
