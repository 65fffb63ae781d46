"""Runs the mock card provider as real `python -m mock_gateway` processes for the integration tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SERVICE_DIR = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MockGatewayProcesses:
    """Starts `python -m mock_gateway` processes on free ports and stops every one it started."""

    def __init__(self, log_dir: Path) -> None:
        self._log_dir = log_dir
        self._processes: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> str:
        """Start one mock provider with extra MOCK_GATEWAY_* settings; return its base URL once /health answers."""
        port = find_free_port()
        log_path = self._log_dir / f"mock_gateway_{port}.log"
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_GATEWAY_")}
        child_env.update(env, MOCK_GATEWAY_HOST="127.0.0.1", MOCK_GATEWAY_PORT=str(port), PYTHONUNBUFFERED="1")
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "mock_gateway"], cwd=SERVICE_DIR, env=child_env,
                stdout=log, stderr=subprocess.STDOUT,
            )
        self._processes.append(process)
        base_url = f"http://127.0.0.1:{port}"
        self._wait_until_healthy(process, base_url, log_path)
        return base_url

    @staticmethod
    def _wait_until_healthy(process: subprocess.Popen[bytes], base_url: str, log_path: Path) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"mock gateway exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{base_url}/health", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        pytest.fail(f"mock gateway at {base_url} not healthy within {STARTUP_TIMEOUT_S}s:\n{log_path.read_text()}")

    def stop_all(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._processes.clear()
