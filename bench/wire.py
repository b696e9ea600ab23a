"""What every harness of the bench shares: `tracegate serve` started as an operator would start it, and a
national system's side of the wire (publish a request, consume outbound queues)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import aio_pika

from gateway.core.wire_names import INBOUND_EXCHANGE, outbound_queue
from gateway.dev.pki import DevPki

OnMessage = Callable[[aio_pika.abc.AbstractIncomingMessage], Awaitable[None]]


def serve_env(
    tmp: Path, url: str, pki: DevPki, *, database_url: str | None = None, schema: str = "", **extra: str
) -> dict[str, str]:
    """The environment `tracegate serve` runs with in a bench: the run's vhost, its folder's routing table and
    SQLite file (unless `database_url`), the development PKI; `extra` as `TRACEGATE_<NAME>` settings. The bench's
    national systems share the broker's guest user, so no user_id is required: the figures are the switch's, not
    the per-state users' (whose cost is one property check per message)."""
    (tmp / "none.toml").write_text("[tracegate]\n")
    variables = {
        **os.environ,
        "TRACEGATE_CONFIG": str(tmp / "none.toml"),
        "TRACEGATE_BROKER_URL": url,
        "TRACEGATE_DATABASE_URL": database_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}",
        "TRACEGATE_DATABASE_SCHEMA": schema,
        "TRACEGATE_ROUTING_TABLE": str(tmp / "routing.toml"),
        "TRACEGATE_TRUST_DIR": str(pki.trust_dir),
        "TRACEGATE_GATEWAY_KEY": str(pki.gateway_key_path),
        "TRACEGATE_GATEWAY_CERT": str(pki.gateway_cert_path),
        "TRACEGATE_LOG_LEVEL": os.environ.get("BENCH_SERVE_LOG", "warning"),
        "TRACEGATE_REQUIRE_USER_ID": "false",
    }
    variables.update({f"TRACEGATE_{k.upper()}": v for k, v in extra.items()})
    return variables


def start_serve(variables: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`tracegate serve` as a child process, its output appended to `log`."""
    with log.open("ab") as out:  # the child has its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"], env=variables, stdout=out, stderr=subprocess.STDOUT
        )


async def until_declared(url: str, state: str = "ZA", attempts: int = 300) -> None:
    """Wait until `tracegate serve` has declared its queues (a state's outbound queue exists)."""
    for _ in range(attempts):
        with contextlib.suppress(Exception):
            connection = await aio_pika.connect(url)
            try:
                channel = await connection.channel()
                await channel.declare_queue(outbound_queue(state), passive=True)
                return
            finally:
                await connection.close()
        await asyncio.sleep(0.2)
    raise RuntimeError("tracegate serve did not declare its topology")


def request(body: bytes, message_id: str) -> aio_pika.Message:
    """A message as a national system publishes it: persistent XML, its AMQP message_id the Header's."""
    return aio_pika.Message(
        body, message_id=message_id, content_type="application/xml", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
    )


async def publish(
    channel: aio_pika.abc.AbstractChannel, sender: str, body: bytes, message_id: str, *, timeout: float | None = None
) -> None:
    """Publish one message to `itrace.inbound` as `sender`, confirmed when the channel has confirms on."""
    exchange = await channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
    await exchange.publish(request(body, message_id), routing_key=sender, timeout=timeout)


async def consume_outbound(
    connection: aio_pika.abc.AbstractConnection,
    states: Iterable[str],
    on_message: Callable[[str], OnMessage],
    *,
    prefetch: int = 500,
) -> aio_pika.abc.AbstractChannel:
    """Consume each state's outbound queue on one channel, `on_message(state)` handling its messages."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=prefetch)
    for state in states:
        queue = await channel.declare_queue(outbound_queue(state), durable=True, passive=True)
        await queue.consume(on_message(state))
    return channel
