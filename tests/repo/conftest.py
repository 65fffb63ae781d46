"""Fixtures for the repo-level checks: the compose file, stub services behind a real gateway, psql."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway_harness import REPO_ROOT, Psql, running_gateway, running_stub_services


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="session")
def stub_services() -> Iterator[dict[str, str]]:
    """Upstream name -> HOST:PORT of a stub that answers with what it received."""
    with running_stub_services() as addresses:
        yield addresses


@pytest.fixture(scope="session")
def gateway_url(stub_services: dict[str, str]) -> Iterator[str]:
    with running_gateway(stub_services) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def psql() -> Psql:
    client = Psql()
    if not Path(client.executable).exists():
        pytest.skip("psql is not installed")
    probe = client.run("SELECT 1", check=False)
    if probe.returncode != 0:
        pytest.skip(f"no Postgres superuser access on {client.host}: {probe.stderr.strip()}")
    return client
