"""The mock provider's listening address comes from the environment (compose binds it to 0.0.0.0)."""

from __future__ import annotations

import pytest

from mock_gateway.app import MockGatewaySettings


def test_host_and_port_come_from_mock_gateway_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_GATEWAY_HOST", "0.0.0.0")
    monkeypatch.setenv("MOCK_GATEWAY_PORT", "9099")
    settings = MockGatewaySettings()
    assert (settings.host, settings.port) == ("0.0.0.0", 9099)


def test_local_default_is_loopback_on_8090(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOCK_GATEWAY_HOST", raising=False)
    monkeypatch.delenv("MOCK_GATEWAY_PORT", raising=False)
    assert (MockGatewaySettings().host, MockGatewaySettings().port) == ("127.0.0.1", 8090)
