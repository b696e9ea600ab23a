"""A national system's side of the contract over RabbitMQ: publish signed messages, read the outbound queue.

Used by the demo, the end-to-end tests and the benchmarks to play national points of contact.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractQueue
from lxml import etree

from gateway.adapters.amqp import INBOUND_EXCHANGE, outbound_queue
from gateway.core.model import NS

_MESSAGE_ID = re.compile(rb"MessageId>\s*([0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12})\s*<")


def header_message_id(body: bytes) -> str | None:
    """The `Header/MessageId` of a signed message (the first MessageId in its opening bytes), without parsing it."""
    found = _MESSAGE_ID.search(body, 0, 4096)
    return found.group(1).decode("ascii") if found else None


@dataclass(frozen=True)
class Received:
    """A message the gateway sent to this national system."""

    kind: str
    message_id: str
    body: bytes
    root: etree._Element

    def find(self, path: str) -> str | None:
        """Text at `path` (names without prefix, `/`-separated) below the root."""
        t = f"{{{NS}}}"
        return self.root.findtext(t + path.replace("/", "/" + t))


class NationalSystem:
    """One simulated NPC: its own AMQP connection, publishing as its state and reading its own queue."""

    def __init__(self, state: str, url: str, *, queue: str | None = None, user_id: str | None = None) -> None:
        """`queue`: the routing table's queue for the state, where it names one (else the contract's). `user_id`:
        the broker user `url` connects as, set on every message (the broker checks it; the switch requires it)."""
        self.state = state
        self.url = url
        self.user_id = user_id
        self.queue = queue or outbound_queue(state)
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None

    async def connect(self, *, purge: bool = False) -> None:
        """Connect and open this state's outbound queue (declared by the gateway)."""
        self._connection = await aio_pika.connect(self.url, client_properties={"connection_name": f"npc-{self.state}"})
        self._channel = await self._connection.channel(publisher_confirms=True)
        self._queue = await self._channel.declare_queue(self.queue, passive=True)
        if purge:
            await self._queue.purge()

    async def send(self, body: bytes, *, routing_key: str | None = None, message_id: str | None = None) -> None:
        """Publish signed bytes to `itrace.inbound` as this state (or under another routing key, for attacks), with
        the properties the contract asks for: `message_id` is the body's `Header/MessageId` unless given."""
        assert self._channel is not None, "connect first"
        exchange = await self._channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
        message = aio_pika.Message(
            body,
            content_type="application/xml",
            message_id=message_id or header_message_id(body),
            user_id=self.user_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, routing_key=routing_key or self.state)

    async def receive(self, count: int = 1, timeout: float = 10.0) -> list[Received]:
        """Wait for `count` messages from the gateway (fewer if `timeout` passes first)."""
        assert self._queue is not None, "connect first"
        got: list[Received] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(got) < count and loop.time() < deadline:
            message = await self._queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.02)
                continue
            root = etree.fromstring(message.body, etree.XMLParser(resolve_entities=False, no_network=True))
            got.append(
                Received(
                    kind=etree.QName(root).localname,
                    message_id=message.message_id or "",
                    body=message.body,
                    root=root,
                )
            )
        return got

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
