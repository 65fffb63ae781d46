"""The service's common surface: health, readiness, and an OpenAPI document listing its endpoints."""

from __future__ import annotations


async def test_health_ready_and_openapi(client, admin_headers):
    assert (await client.get("/health")).json()["service"] == "payment"
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["checks"]["database"] == "ok"
    paths = (await client.get("/api/payment/openapi.json", headers=admin_headers)).json()["paths"]
    for path in (
        "/api/payments",
        "/api/payments/{payment_id}",
        "/api/payments/{payment_id}/refunds",
        "/api/payments/stats",
        "/api/payments/reconcile",
        "/api/customers/{customer_id}/payment_methods",
    ):
        assert path in paths, path


async def test_stats_path_is_not_mistaken_for_a_payment_id(client, admin_headers):
    assert (await client.get("/api/payments/stats", headers=admin_headers)).status_code == 200
    assert (await client.get("/api/payments/not-a-uuid", headers=admin_headers)).status_code == 422
