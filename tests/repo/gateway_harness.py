"""Helpers for the repo-level checks: stub services, a real local nginx gateway in front of them, psql."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
UPSTREAM_NAMES = ("customer", "payment", "subscription", "invoice", "dunning", "notifier", "dashboard")


def service_folders() -> list[str]:
    return sorted(
        path.name
        for path in (REPO_ROOT / "services").iterdir()
        if path.is_dir() and not path.name.startswith((".", "_"))
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _StubServiceHandler(BaseHTTPRequestHandler):
    """Answers every request with JSON saying which stub got it and what arrived."""

    protocol_version = "HTTP/1.1"
    server: "_StubServer"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        payload = json.dumps(
            {
                "upstream": self.server.upstream_name,
                "method": self.command,
                "path": self.path,
                "http_version": self.request_version,
                "headers": {name.lower(): value for name, value in self.headers.items()},
                "body_bytes": len(body),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        # Like the real services, echo the correlation id they were given.
        if correlation_id := self.headers.get("X-Correlation-ID"):
            self.send_header("X-Correlation-ID", correlation_id)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_name: str) -> None:
        super().__init__(("127.0.0.1", 0), _StubServiceHandler)
        self.upstream_name = upstream_name

    @property
    def address(self) -> str:
        host, port = self.server_address[:2]
        return f"{host}:{port}"


@contextmanager
def running_stub_services(names: tuple[str, ...] = UPSTREAM_NAMES) -> Iterator[dict[str, str]]:
    """One stub HTTP server per name, each on its own free port; yields name -> HOST:PORT."""
    servers = [_StubServer(name) for name in names]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield {server.upstream_name: server.address for server in servers}
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def run_render_local(prefix: Path, port: int, upstreams: Mapping[str, str]) -> Path:
    """Run gateway/render_local.py the way a developer does; return the written nginx.conf."""
    flags = [f"--{name}={address}" for name, address in upstreams.items()]
    subprocess.run(
        [sys.executable, str(REPO_ROOT / "gateway" / "render_local.py"), "--prefix", str(prefix),
         "--port", str(port), *flags],
        check=True,
        capture_output=True,
        text=True,
    )
    return prefix / "nginx.conf"


def gateway_prefix() -> Path:
    # Started as root, nginx's workers run as nobody and must reach the temp directories under the
    # prefix; pytest's tmp_path sits below a 0700 directory, so use a traversable one instead.
    prefix = Path(tempfile.mkdtemp(prefix="billing-gateway-"))
    prefix.chmod(0o755)
    return prefix


def _wait_until_healthy(process: subprocess.Popen[str], base_url: str, error_log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = error_log.read_text() if error_log.exists() else ""
            raise RuntimeError(f"nginx exited with {process.returncode}: {process.stderr.read()}{log}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nginx did not answer on {base_url} within 10 s")


@contextmanager
def running_gateway(upstreams: Mapping[str, str], prefix: Path | None = None) -> Iterator[str]:
    """A local nginx rendered by gateway/render_local.py in front of `upstreams`; yields its base URL.

    Its files (config, logs) go to `prefix` when given, which is then left for the caller to read and remove.
    """
    if not Path(NGINX).exists():
        pytest.skip("nginx is not installed")
    keep_files = prefix is not None
    prefix = prefix or gateway_prefix()
    port = free_port()
    config = run_render_local(prefix, port, upstreams)
    process = subprocess.Popen(
        [NGINX, "-c", str(config), "-p", str(prefix), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, base_url, prefix / "logs" / "error.log")
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if not keep_files:
            shutil.rmtree(prefix, ignore_errors=True)


@dataclass(frozen=True)
class Psql:
    """psql as the postgres superuser on the local server, for throwaway databases."""

    executable: str = "/usr/bin/psql"
    host: str = "127.0.0.1"

    def run(
        self, sql: str | None = None, *, database: str = "postgres", user: str = "postgres",
        file: Path | None = None, check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        command = [self.executable, "-h", self.host, "-U", user, "-d", database,
                   "-v", "ON_ERROR_STOP=1", "-X", "-q", "-tA"]
        command += ["-f", str(file)] if file else ["-c", sql or ""]
        # Local defaults: every service role's password is its name (trust auth ignores it).
        environment = {**os.environ, "PGPASSWORD": user, "PGCONNECT_TIMEOUT": "5"}
        return subprocess.run(command, capture_output=True, text=True, env=environment, check=check)


