"""The service publishes and consumes on two broker connections (RabbitMQ blocks a publishing connection under a
memory or disk alarm; a consumer on it could not ack, and the queues that would free memory could not drain)."""

from __future__ import annotations

import asyncio
import re


async def connection_names(vhost: str) -> list[str]:
    proc = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "list_connections", "-p", vhost, "client_properties",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return sorted(re.findall(r'\{"connection_name","([^"]+)"\}', out.decode()))


async def test_the_relay_and_the_consumer_each_have_their_own_connection(app, client, service_env):
    runtime = app.state.runtime

    assert runtime.publishing is not None and runtime.consuming is not None
    assert runtime.publishing is not runtime.consuming
    names = await connection_names(service_env.vhost)
    assert "invoice-relay" in names and "invoice-consumer" in names
