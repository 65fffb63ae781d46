"""Run the mock card provider: `python -m mock_gateway` from services/payment.

Listens on MOCK_GATEWAY_HOST:MOCK_GATEWAY_PORT (default 127.0.0.1:8090).
"""

import uvicorn

from mock_gateway.app import MockGatewaySettings, create_app


def main() -> None:
    settings = MockGatewaySettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # A stalled "timeout card" request must not hold up shutdown for its full hang.
        timeout_graceful_shutdown=2,
        # Longer than the payment service's pooled connections stay idle (httpx: 5 s), so the service never
        # reuses one the provider is closing.
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
