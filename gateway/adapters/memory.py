"""An in-memory broker with the same roles as the AMQP adapter: for tests that need no RabbitMQ."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.ports import Handler, Inbound, PublishFailed


@dataclass(frozen=True)
class Published:
    """One message the gateway published."""

    queue: str
    body: bytes
    message_id: str
    kind: str


class MemoryBroker:
    """Queues in a dict; publishing to an undeclared queue fails like a mandatory publish returned."""

    def __init__(self) -> None:
        self.queues: dict[str, list[Published]] = defaultdict(list)
        self.declared: set[str] = set()
        self._handler: Handler | None = None
        self.fail_publishing = False

    async def declare_topology(self, states: Iterable[str], *, outbound: Iterable[str] | None = None) -> None:
        """Declare the outbound queues (by default each state's `itrace.outbound.<CC>`)."""
        self.declared.update(outbound if outbound is not None else (f"itrace.outbound.{s}" for s in states))

    async def consume(self, handler: Handler) -> None:
        """Remember the handler that `send` feeds."""
        self._handler = handler

    async def send(self, inbound: Inbound) -> None:
        """Hand one inbound message to the gateway, as the broker would."""
        assert self._handler is not None, "consume first"
        await self._handler(inbound)

    async def publish(self, queue: str, body: bytes, *, message_id: str, kind: str) -> None:
        """Keep the message in its queue, or fail as a returned mandatory publish."""
        if self.fail_publishing:
            raise PublishFailed("broker unavailable")
        if queue not in self.declared:
            raise PublishFailed(f"{queue}: no such queue")
        self.queues[queue].append(Published(queue, body, message_id, kind))

    def take(self, state: str) -> list[Published]:
        """Everything queued for `state`, removing it."""
        queue = f"itrace.outbound.{state}"
        messages, self.queues[queue] = self.queues[queue], []
        return messages
