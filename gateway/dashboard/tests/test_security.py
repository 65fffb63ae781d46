"""Headers that keep the dashboard out of frames and scripts out of pages, and settings that refuse local secrets."""

from __future__ import annotations

import logging

import httpx
import pytest
from billing_shared.logs import correlation_id
from fastapi import FastAPI
from pydantic import ValidationError

from dashboard.settings import LOCAL_SESSION_SECRET, DashboardSettings

from .conftest import BASE_URL
from .fake_api import FakeApi


async def test_pages_forbid_inline_script_and_framing(admin: httpx.AsyncClient):
    for path in ("/dashboard", "/dashboard/login", "/dashboard/customers"):
        response = await admin.get(path, follow_redirects=True)
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"


async def test_pages_carry_no_inline_script(admin: httpx.AsyncClient):
    for path in ("/dashboard", "/dashboard/customers", "/dashboard/dead-letters", "/dashboard/dunning"):
        assert "<script" not in (await admin.get(path)).text


async def test_stylesheet_is_served_under_the_dashboard_prefix(client: httpx.AsyncClient):
    response = await client.get("/dashboard/static/dashboard.css")
    assert response.status_code == 200 and "text/css" in response.headers["content-type"]


async def test_health_needs_no_sign_in(client: httpx.AsyncClient):
    assert (await client.get("/health")).json() == {"status": "ok", "service": "dashboard"}
    assert (await client.get("/dashboard/health")).status_code == 200


async def test_unknown_page_is_a_404_page(admin: httpx.AsyncClient):
    response = await admin.get("/dashboard/nowhere")
    assert response.status_code == 404 and "Not found" in response.text


async def test_correlation_id_travels_to_the_apis(admin: httpx.AsyncClient, fake: FakeApi):
    response = await admin.get("/dashboard/payments", headers={"X-Correlation-ID": "trace-123"})
    assert response.headers["x-correlation-id"] == "trace-123"
    assert fake.calls[-1][1] == "/api/payments" and fake.correlation_ids[-1] == "trace-123"


class _CorrelationIds(logging.Handler):
    """What the dashboard's JSON log lines would carry: the correlation id in force when each record is logged."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str | None]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.getMessage(), correlation_id.get()))


async def test_a_crash_is_a_500_page_with_the_usual_headers_and_a_log_line_with_the_correlation_id(
    dashboard: FastAPI,
):
    async def crash() -> None:
        raise RuntimeError("boom")

    dashboard.add_api_route("/dashboard/crash", crash)
    spy = _CorrelationIds()
    logging.getLogger("dashboard").addHandler(spy)
    # raise_app_exceptions=False: what a browser sees, even if the app re-raises the error to the server.
    transport = httpx.ASGITransport(app=dashboard, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            response = await http.get("/dashboard/crash", headers={"X-Correlation-ID": "trace-500"})
    finally:
        logging.getLogger("dashboard").removeHandler(spy)
    assert response.status_code == 500 and "Something went wrong" in response.text
    assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", "")
    assert response.headers.get("x-frame-options") == "DENY"
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert response.headers.get("cache-control") == "no-store"
    assert response.headers.get("x-correlation-id") == "trace-500"
    assert ("unhandled error on GET /dashboard/crash", "trace-500") in spy.seen


def test_production_refuses_the_local_session_secret_and_a_cookie_sent_over_plain_http():
    with pytest.raises(ValidationError, match="DASHBOARD_SESSION_SECRET"):
        DashboardSettings(environment="production", dashboard_cookie_secure=True)
    with pytest.raises(ValidationError, match="DASHBOARD_SESSION_SECRET"):
        DashboardSettings(environment="production", dashboard_cookie_secure=True, dashboard_session_secret="short")
    with pytest.raises(ValidationError, match="DASHBOARD_COOKIE_SECURE"):
        DashboardSettings(environment="production", dashboard_session_secret="x" * 40)
    ok = DashboardSettings(environment="production", dashboard_session_secret="x" * 40, dashboard_cookie_secure=True)
    assert ok.dashboard_session_secret != LOCAL_SESSION_SECRET


@pytest.mark.parametrize("environment", ["Production", "production ", "prod", "staging"])
def test_an_environment_named_otherwise_does_not_slip_past_the_production_checks(environment):
    with pytest.raises(ValidationError, match="DASHBOARD_SESSION_SECRET|'local', 'test' or 'production'"):
        DashboardSettings(environment=environment)


def test_api_base_url_also_reads_services_base_url(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SERVICES_BASE_URL", "http://gateway:8080/")
    assert DashboardSettings().api_base_url == "http://gateway:8080"
    monkeypatch.setenv("DASHBOARD_API_BASE_URL", "http://other:9000")
    assert DashboardSettings().api_base_url == "http://other:9000"


def test_public_key_from_jwt_public_key_file(monkeypatch: pytest.MonkeyPatch, tmp_path):
    key_file = tmp_path / "jwt_public.pem"
    key_file.write_text("PEM")
    monkeypatch.setenv("JWT_PUBLIC_KEY_FILE", str(key_file))
    monkeypatch.delenv("JWT_PUBLIC_KEY", raising=False)
    assert DashboardSettings().public_key_pem() == "PEM"
    monkeypatch.setenv("JWT_PUBLIC_KEY", "INLINE")
    assert DashboardSettings().public_key_pem() == "INLINE"


def test_dashboard_main_app_is_built_on_first_access(monkeypatch: pytest.MonkeyPatch, fake: FakeApi):
    # The Docker image runs `uvicorn dashboard.main:app`; importing the module alone reads no settings.
    from uvicorn.importer import import_from_string

    import dashboard.main

    monkeypatch.setenv("JWT_PUBLIC_KEY", fake.public_key)
    for name in ("DASHBOARD_API_BASE_URL", "SERVICES_BASE_URL", "DASHBOARD_JWT_PUBLIC_KEY", "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delattr(dashboard.main, "app", raising=False)
    app = import_from_string("dashboard.main:app")
    assert app.state.dashboard.settings.api_base_url == "http://127.0.0.1:8080"
    assert import_from_string("dashboard.main:app") is app
