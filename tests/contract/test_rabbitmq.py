"""The transport behaviour suite against the real RabbitMQ, through the gateway's AMQP adapter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest

from gateway.adapters.amqp import DEAD_LETTER_QUEUE, INBOUND_EXCHANGE, AmqpBroker, outbound_queue, state_queue
from gateway.core.ports import GiveUp, Handler

from .base import STATES, Delivered, Harness, TransportBehaviour


class RabbitHarness:
    """The AMQP adapter on a vhost of its own, and a national system's connection beside it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.broker = AmqpBroker(url, prefetch=4)
        self._npc: aio_pika.abc.AbstractRobustConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._injected = 0

    async def _side(self) -> aio_pika.abc.AbstractChannel:
        """The national system's channel (publisher confirms on)."""
        if self._channel is None:
            self._npc = await aio_pika.connect_robust(self.url)
            self._channel = await self._npc.channel(publisher_confirms=True)
        return self._channel

    async def start(self, handler: Handler, give_up: GiveUp) -> None:
        """Connect, declare the contract's topology for the states, consume."""
        await self.broker.connect()
        await self.broker.declare_topology(STATES)
        await self.broker.consume(handler, give_up)

    async def inject(self, state: str, body: bytes, *, message_id: str) -> None:
        """Publish to `itrace.inbound` with the state's code as routing key, confirmed."""
        channel = await self._side()
        exchange = await channel.get_exchange(INBOUND_EXCHANGE)
        message = aio_pika.Message(
            body, message_id=message_id, content_type="application/xml", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await exchange.publish(message, routing_key=state, mandatory=True)
        self._injected += 1

    async def publish(self, queue: str, body: bytes, *, message_id: str, kind: str) -> None:
        """The adapter's confirmed, mandatory publish."""
        await self.broker.publish(queue, body, message_id=message_id, kind=kind)

    async def _take(self, name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Everything ready in a queue, taken."""
        queue = await (await self._side()).declare_queue(name, passive=True)
        taken = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
        return taken

    async def outbound(self, state: str) -> list[Delivered]:
        """Take `state`'s outbound queue."""
        return [Delivered(m.body, m.message_id, m.type) for m in await self._take(outbound_queue(state))]

    async def dead_letters(self) -> list[bytes]:
        """Take `itrace.dead-letter`."""
        return [m.body for m in await self._take(DEAD_LETTER_QUEUE)]

    async def disconnect(self) -> int:
        """Close the adapter's connection; count what waits again in the states' inbound queues."""
        await self.broker.close()
        channel = await self._side()
        waiting = 0
        for _ in range(50):  # the broker returns unacknowledged deliveries as it notices the closed channel
            waiting = 0
            for state in STATES:
                queue = await channel.declare_queue(state_queue(state), passive=True)
                waiting += int(queue.declaration_result.message_count or 0)
            if waiting:
                break
            await asyncio.sleep(0.02)
        return waiting

    async def close(self) -> None:
        """Close both connections."""
        await self.broker.close()
        if self._npc is not None:
            await self._npc.close()


class TestRabbitMQ(TransportBehaviour):
    """The suite on the real broker."""

    @pytest.fixture
    async def harness(self, fresh_amqp_url: str) -> AsyncIterator[Harness]:
        """The adapter on a fresh vhost."""
        harness = RabbitHarness(fresh_amqp_url)
        try:
            yield harness
        finally:
            await harness.close()
