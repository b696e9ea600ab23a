"""The transport behaviour suite against the in-memory broker the integration tests use."""

from __future__ import annotations

import asyncio

import pytest

from gateway.adapters.memory import MemoryBroker
from gateway.core.ports import GiveUp, Handler, Inbound

from .base import STATES, Delivered, Harness, TransportBehaviour


class MemoryHarness:
    """The memory broker, its deliveries running as tasks the way a broker's would."""

    def __init__(self) -> None:
        self.broker = MemoryBroker()
        self._deliveries: list[tuple[Inbound, asyncio.Task[None]]] = []

    async def start(self, handler: Handler, give_up: GiveUp) -> None:
        """Declare each state's outbound queue and consume."""
        await self.broker.declare_topology(STATES)
        await self.broker.consume(handler, give_up)

    async def inject(self, state: str, body: bytes, *, message_id: str) -> None:
        """Deliver as the broker would: in a task of its own."""
        inbound = Inbound(body=body, routing_key=state, message_id=message_id, content_type="application/xml")
        self._deliveries.append((inbound, asyncio.create_task(self.broker.send(inbound))))

    async def publish(self, queue: str, body: bytes, *, message_id: str, kind: str) -> None:
        """The gateway's publish."""
        await self.broker.publish(queue, body, message_id=message_id, kind=kind)

    async def outbound(self, state: str) -> list[Delivered]:
        """Take `state`'s queue."""
        return [Delivered(p.body, p.message_id, p.kind) for p in self.broker.take(state)]

    async def dead_letters(self) -> list[bytes]:
        """Take the dead letters."""
        held, self.broker.dead_letters = self.broker.dead_letters, []
        return [m.body for m in held]

    async def disconnect(self) -> int:
        """Stop every delivery in progress; count those neither acknowledged nor dead-lettered."""
        for _, task in self._deliveries:
            task.cancel()
        await asyncio.gather(*(t for _, t in self._deliveries), return_exceptions=True)
        done = {m.body for m in self.broker.acked} | {m.body for m in self.broker.dead_letters}
        return sum(1 for inbound, _ in self._deliveries if inbound.body not in done)


class TestMemoryBroker(TransportBehaviour):
    """The suite on `MemoryBroker`."""

    @pytest.fixture
    def harness(self) -> Harness:
        """A fresh memory broker."""
        return MemoryHarness()
