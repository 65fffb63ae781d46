"""The nginx gateway: both configs pass `nginx -t`, and a real nginx routes, limits and tags requests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from gateway_harness import (
    NGINX,
    REPO_ROOT,
    UPSTREAM_NAMES,
    free_port,
    gateway_prefix,
    run_render_local,
    running_gateway,
)

NGINX_DIR = REPO_ROOT / "gateway" / "nginx"

needs_nginx = pytest.mark.skipif(not Path(NGINX).exists(), reason="nginx is not installed")


def nginx_test(config: Path, prefix: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NGINX, "-t", "-c", str(config), "-p", str(prefix), *extra], capture_output=True, text=True
    )


def render_listening_on(prefix: Path, listen_host: str) -> Path:
    script = REPO_ROOT / "gateway" / "render_local.py"
    subprocess.run(
        [sys.executable, str(script), "--prefix", str(prefix), "--port", "18080", "--listen-host", listen_host],
        check=True, capture_output=True, text=True,
    )
    return prefix / "nginx.conf"


class TestConfigFiles:
    @needs_nginx
    def test_rendered_local_config_passes_nginx_test(self) -> None:
        prefix = gateway_prefix()
        try:
            config = run_render_local(prefix, free_port(), {"customer": "127.0.0.1:18001"})
            result = nginx_test(config, prefix)
        finally:
            shutil.rmtree(prefix, ignore_errors=True)
        assert result.returncode == 0, result.stderr

    def test_rendered_local_config_brackets_an_ipv6_listen_host(self, tmp_path: Path) -> None:
        text = render_listening_on(tmp_path, "::1").read_text()

        assert "listen [::1]:18080;" in text

    @needs_nginx
    def test_rendered_local_config_with_an_ipv6_listen_host_passes_nginx_test(self) -> None:
        prefix = gateway_prefix()
        try:
            result = nginx_test(render_listening_on(prefix, "::1"), prefix)
        finally:
            shutil.rmtree(prefix, ignore_errors=True)
        assert result.returncode == 0, result.stderr

    def test_rendered_local_config_keeps_every_writable_path_under_the_prefix(self, tmp_path: Path) -> None:
        prefix = (tmp_path / "gateway").resolve()
        text = run_render_local(prefix, 18080, {}).read_text()

        writable = re.findall(r'^\s*(pid|error_log|access_log|\w+_temp_path)\s+"([^"]+)"', text, re.MULTILINE)
        directives = {name for name, _ in writable}

        assert {"pid", "error_log", "access_log"} <= directives
        assert {f"{kind}_temp_path" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")} <= directives
        assert all(Path(path).is_relative_to(prefix) for _, path in writable), writable

    def test_rendered_local_config_defaults_to_the_local_service_ports(self, tmp_path: Path) -> None:
        text = run_render_local(tmp_path, 18080, {}).read_text()
        upstreams = dict(re.findall(r"upstream (\w+) \{ server ([\d.:]+);", text))

        assert upstreams == {
            "customer": "127.0.0.1:8001",
            "payment": "127.0.0.1:8002",
            "subscription": "127.0.0.1:8003",
            "invoice": "127.0.0.1:8004",
            "dunning": "127.0.0.1:8005",
            "notifier": "127.0.0.1:8006",
            "dashboard": "127.0.0.1:8007",
        }
        assert "listen 127.0.0.1:18080;" in text

    def test_docker_config_sends_each_upstream_to_its_compose_service_on_port_8000(self) -> None:
        text = (NGINX_DIR / "nginx.docker.conf").read_text()
        upstreams = dict(re.findall(r"upstream (\w+)\s*\{[^}]*?server ([\w.-]+:\d+)[ ;]", text))

        assert upstreams == {name: f"{name}:8000" for name in UPSTREAM_NAMES}
        assert "listen 8080;" in text

    def test_docker_config_keeps_resolving_the_services_so_scaled_replicas_get_traffic(self) -> None:
        # `resolve` re-reads compose's DNS while nginx runs; it needs a resolver and each upstream's shared zone.
        text = (NGINX_DIR / "nginx.docker.conf").read_text()
        blocks = dict(re.findall(r"upstream (\w+)\s*\{([^}]*)\}", text))

        assert re.search(r"^\s*resolver 127\.0\.0\.11 valid=\d+s", text, re.MULTILINE)
        assert set(blocks) == set(UPSTREAM_NAMES)
        for name, block in blocks.items():
            assert re.search(rf"\bzone {name}\s+\d+k;", block), block
            assert re.search(rf"\bserver {name}:8000 resolve;", block), block

    @needs_nginx
    def test_docker_config_passes_nginx_test_with_its_hostnames_resolvable(self, tmp_path: Path) -> None:
        # Compose hostnames do not resolve here; 127.0.0.1 stands in for them.
        for name in ("common.conf", "routes.conf"):
            shutil.copy(NGINX_DIR / name, tmp_path / name)
        text = (NGINX_DIR / "nginx.docker.conf").read_text()
        # nginx here (1.22) predates the upstream `resolve` parameter of the image's nginx (1.27.3 and later).
        text = re.sub(r"server [\w-]+:8000 resolve;", "server 127.0.0.1:8000;", text)
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp_paths = "".join(f"\n    {kind}_temp_path {tmp_path}/{kind};" for kind in kinds)
        text = text.replace("http {", "http {" + temp_paths, 1)
        config = tmp_path / "nginx.conf"
        config.write_text(text)

        result = nginx_test(config, tmp_path, "-g", f"pid {tmp_path}/nginx.pid;")

        assert result.returncode == 0, result.stderr

    def test_every_proxy_pass_names_a_defined_upstream(self) -> None:
        targets = set(re.findall(r"proxy_pass http://(\w+);", (NGINX_DIR / "routes.conf").read_text()))
        assert targets == set(UPSTREAM_NAMES)

    def test_no_location_overrides_the_shared_proxy_headers(self) -> None:
        # A location with its own proxy_set_header or add_header silently drops all the server's ones.
        routes = (NGINX_DIR / "routes.conf").read_text()
        for block in re.findall(r"location[^{]*\{([^}]*)\}", routes):
            assert "proxy_set_header" not in block and "add_header" not in block, block


ROUTES = [
    ("/api/customers/cus_1/payment_methods", "payment"),
    ("/api/customers/cus_1/payment_methods/pm_1", "payment"),
    ("/api/customers", "customer"),
    ("/api/customers/cus_1", "customer"),
    ("/api/customers/cus_1/api_keys", "customer"),
    ("/api/auth/token", "customer"),
    ("/api/payments/pay_1", "payment"),
    ("/api/payment_methods/pm_1", "payment"),
    ("/api/refunds", "payment"),
    ("/api/plans", "subscription"),
    ("/api/subscriptions/sub_1", "subscription"),
    ("/api/billing-runs", "subscription"),
    ("/api/invoices/inv_1", "invoice"),
    ("/api/credit_notes/cn_1", "invoice"),
    ("/invoices/inv_1", "invoice"),
    ("/api/dunning/cases", "dunning"),
    ("/api/notifications", "notifier"),
    ("/dashboard", "dashboard"),
    ("/dashboard/customers", "dashboard"),
    *((f"/api/{service}/openapi.json", service) for service in UPSTREAM_NAMES if service != "dashboard"),
    *((f"/api/{service}/dead-letters", service) for service in UPSTREAM_NAMES if service != "dashboard"),
]


@needs_nginx
class TestRouting:
    @pytest.mark.parametrize(("path", "upstream"), ROUTES)
    def test_each_path_reaches_its_service_with_the_path_unchanged(
        self, gateway_url: str, path: str, upstream: str
    ) -> None:
        response = httpx.get(f"{gateway_url}{path}?limit=10")

        assert response.status_code == 200
        assert response.json()["upstream"] == upstream
        assert response.json()["path"] == f"{path}?limit=10"

    def test_posts_reach_the_service_with_their_body(self, gateway_url: str) -> None:
        response = httpx.post(f"{gateway_url}/api/payments", json={"amount": 1000, "currency": "EUR"})

        assert response.json()["method"] == "POST"
        assert response.json()["body_bytes"] == len(b'{"amount":1000,"currency":"EUR"}')

    def test_unknown_path_gets_a_json_404_from_the_gateway(self, gateway_url: str) -> None:
        response = httpx.get(f"{gateway_url}/wp-admin")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    def test_health_answers_ok_without_any_service(self, gateway_url: str) -> None:
        response = httpx.get(f"{gateway_url}/health")

        assert (response.status_code, response.text) == (200, "ok")

    def test_server_header_does_not_reveal_the_nginx_version(self, gateway_url: str) -> None:
        assert httpx.get(f"{gateway_url}/health").headers["server"] == "nginx"


@needs_nginx
def test_access_log_is_one_json_object_per_request_without_the_query_string(stub_services: dict[str, str]) -> None:
    # Emailed invoice links are signed in their query string; a log reader must not be able to reuse one.
    prefix = gateway_prefix()
    try:
        with running_gateway(stub_services, prefix) as base_url:
            signed_link = f"{base_url}/invoices/inv_1?expires=9999999999&signature=s3cr3t"
            httpx.get(signed_link, headers={"X-Correlation-ID": "req-7"})
        lines = (prefix / "logs" / "access.log").read_text().splitlines()
    finally:
        shutil.rmtree(prefix, ignore_errors=True)

    entry = json.loads(lines[-1])
    assert (entry["path"], entry["status"], entry["correlation_id"]) == ("/invoices/inv_1", "200", "req-7")
    assert "s3cr3t" not in "\n".join(lines)


@needs_nginx
class TestProxyHeaders:
    def test_client_correlation_id_is_passed_to_the_service_and_back(self, gateway_url: str) -> None:
        response = httpx.get(f"{gateway_url}/api/plans", headers={"X-Correlation-ID": "req-42.abc"})

        assert response.json()["headers"]["x-correlation-id"] == "req-42.abc"
        assert response.headers.get_list("x-correlation-id") == ["req-42.abc"]

    def test_missing_correlation_id_is_generated_and_returned(self, gateway_url: str) -> None:
        response = httpx.get(f"{gateway_url}/api/plans")

        sent_upstream = response.json()["headers"]["x-correlation-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", sent_upstream)
        assert response.headers.get_list("x-correlation-id") == [sent_upstream]

    def test_malformed_correlation_id_is_replaced(self, gateway_url: str) -> None:
        response = httpx.get(f"{gateway_url}/api/plans", headers={"X-Correlation-ID": '"} forged log'})

        assert re.fullmatch(r"[0-9a-f]{32}", response.json()["headers"]["x-correlation-id"])

    def test_gateway_errors_carry_a_correlation_id_too(self, gateway_url: str) -> None:
        response = httpx.get(f"{gateway_url}/nowhere", headers={"X-Correlation-ID": "req-404"})

        assert response.headers["x-correlation-id"] == "req-404"

    def test_service_sees_host_protocol_and_the_real_client_address(self, gateway_url: str) -> None:
        response = httpx.get(f"{gateway_url}/api/plans", headers={"X-Forwarded-For": "6.6.6.6"})
        seen = response.json()["headers"]

        assert seen["host"] == "127.0.0.1"
        assert seen["x-forwarded-proto"] == "http"
        assert seen["x-forwarded-for"] == "127.0.0.1"

    def test_service_is_spoken_to_in_http_1_1_keepalive(self, gateway_url: str) -> None:
        seen = httpx.get(f"{gateway_url}/api/plans").json()

        assert seen["http_version"] == "HTTP/1.1"
        assert "connection" not in seen["headers"]


@needs_nginx
class TestLimitsAndFailures:
    def test_body_over_one_megabyte_gets_a_json_413(self, gateway_url: str) -> None:
        response = httpx.post(
            f"{gateway_url}/api/customers", content=b"x" * (2 * 1024 * 1024),
            headers={"Content-Type": "application/json"},
        )

        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"

    def test_headers_or_uri_too_large_get_the_json_error_shape(self, gateway_url: str) -> None:
        too_long_token = {"Authorization": "Bearer " + "x" * 9000}
        header = httpx.get(f"{gateway_url}/api/plans", headers=too_long_token)
        uri = httpx.get(f"{gateway_url}/api/plans?q={'x' * 9000}")

        assert (header.status_code, header.headers["content-type"]) == (400, "application/json")
        assert header.json()["error"]["code"] == "bad_request"
        assert (uri.status_code, uri.headers["content-type"]) == (414, "application/json")
        assert uri.json()["error"]["code"] == "uri_too_long"
        assert httpx.get(f"{gateway_url}/_errors/uri_too_long").status_code == 404  # internal only

    def test_body_just_under_one_megabyte_reaches_the_service(self, gateway_url: str) -> None:
        # Larger than nginx's in-memory body buffer, so it also proves the temp paths are writable.
        response = httpx.post(f"{gateway_url}/api/customers", content=b"x" * 1_000_000)

        assert response.status_code == 200
        assert response.json()["body_bytes"] == 1_000_000

    def test_unreachable_service_gets_a_json_502(self) -> None:
        nobody_listening = f"127.0.0.1:{free_port()}"
        with running_gateway({name: nobody_listening for name in UPSTREAM_NAMES}) as base_url:
            response = httpx.get(f"{base_url}/api/invoices/inv_1")

        assert response.status_code == 502
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]["code"] == "upstream_unavailable"
