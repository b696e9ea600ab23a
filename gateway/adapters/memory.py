"""An in-memory broker with the same roles and delivery rules as the AMQP adapter: for tests that need no RabbitMQ.

Its rules are the AMQP adapter's, and `tests/contract/` holds both to one behaviour suite: a message is
acknowledged only after its handler returned; a fault a retry may cure (`TransientError`) returns it to the queue
and it is delivered again, marked redelivered; any other fault is retried up to `max_attempts` deliveries, then
the sender is told (`give_up`) and the message is dead-lettered; a publish is confirmed, or refused as a
mandatory publish to no queue is returned.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from gateway.core.errors import TransientError
from gateway.core.ports import GiveUp, Handler, Inbound, PublishFailed
from gateway.core.wire_names import outbound_queue

log = structlog.get_logger("tracegate.memory")


@dataclass(frozen=True)
class Published:
    """One message the gateway published."""

    queue: str
    body: bytes
    message_id: str
    kind: str


class MemoryBroker:
    """Queues in a dict; publishing to an undeclared queue fails like a mandatory publish returned."""

    def __init__(self, *, max_attempts: int = 2, max_requeues: int = 1000) -> None:
        self.queues: dict[str, list[Published]] = defaultdict(list)
        self.declared: set[str] = set()
        self.dead_letters: list[Inbound] = []  # held for an administrator, as `itrace.dead-letter` holds them
        self.acked: list[Inbound] = []  # every delivery acknowledged, in order
        self.max_attempts = max_attempts  # as a classic queue: the first delivery and one redelivery
        self.max_requeues = max_requeues  # a transient fault that never clears stops the test instead of hanging
        self._handler: Handler | None = None
        self._give_up: GiveUp | None = None
        self.fail_publishing = False

    async def declare_topology(self, states: Iterable[str], *, outbound: Iterable[str] | None = None) -> None:
        """Declare the outbound queues (by default each state's `itrace.outbound.<CC>`)."""
        self.declared.update(outbound if outbound is not None else (outbound_queue(s) for s in states))

    async def consume(self, handler: Handler, give_up: GiveUp | None = None) -> None:
        """Remember the handler that `send` feeds, and who tells the sender of a message given up."""
        self._handler, self._give_up = handler, give_up

    async def send(self, inbound: Inbound) -> None:
        """Deliver one inbound message as the broker would, until it is acknowledged or dead-lettered."""
        assert self._handler is not None, "consume first"
        delivery, requeues = inbound, 0
        while True:
            try:
                await self._handler(delivery)
            except TransientError:
                requeues += 1
                if requeues > self.max_requeues:
                    raise
                await asyncio.sleep(0)  # back in the queue, delivered again (a delivery like any other)
                delivery = dataclasses.replace(delivery, redelivered=True, attempt=delivery.attempt + 1)
                continue
            except Exception as err:
                if delivery.attempt < self.max_attempts:
                    delivery = dataclasses.replace(delivery, redelivered=True, attempt=delivery.attempt + 1)
                    continue
                if self._give_up is not None:
                    try:
                        await self._give_up(delivery, err)
                    except Exception:  # telling the sender is best effort; the message itself is kept
                        log.exception("could not record the failure")
                self.dead_letters.append(delivery)
                return
            self.acked.append(delivery)
            return

    async def publish(self, queue: str, body: bytes, *, message_id: str, kind: str) -> None:
        """Keep the message in its queue, or fail as a returned mandatory publish."""
        if self.fail_publishing:
            raise PublishFailed("broker unavailable")
        if queue not in self.declared:
            raise PublishFailed(f"{queue}: no such queue")
        self.queues[queue].append(Published(queue, body, message_id, kind))

    def take(self, state: str) -> list[Published]:
        """Everything queued for `state`, removing it."""
        queue = outbound_queue(state)
        messages, self.queues[queue] = self.queues[queue], []
        return messages
