"""One transport behaviour suite, run against every broker the gateway can use (FastStream's pattern: a base
class of tests over an abstract harness; `test_memory.py` and `test_rabbitmq.py` each give it a broker).

What it holds every transport to: a publish is confirmed and lands in its queue as sent, and a publish to no queue
is refused; a message is acknowledged only once its handler has returned, and only once; a fault a retry may cure
returns the message and it is delivered again, marked redelivered; any other fault is retried up to the
transport's attempts, then the sender is told and the message is dead-lettered, kept for an administrator.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from gateway.core.errors import TransientError
from gateway.core.ports import GiveUp, Handler, Inbound, PublishFailed

STATES = ("ZA", "MZ")


@dataclass(frozen=True)
class Delivered:
    """A message as it reached a queue."""

    body: bytes
    message_id: str | None
    kind: str | None


class Harness(Protocol):
    """A broker under test, and a national system's view of it."""

    async def start(self, handler: Handler, give_up: GiveUp) -> None:
        """Declare the topology for `STATES` and consume with `handler`."""
        ...

    async def inject(self, state: str, body: bytes, *, message_id: str) -> None:
        """Publish a message as `state`'s national system would."""
        ...

    async def publish(self, queue: str, body: bytes, *, message_id: str, kind: str) -> None:
        """The gateway's confirmed publish."""
        ...

    async def outbound(self, state: str) -> list[Delivered]:
        """What waits in `state`'s outbound queue (taken)."""
        ...

    async def dead_letters(self) -> list[bytes]:
        """The bodies held in the dead-letter queue (taken)."""
        ...

    async def disconnect(self) -> int:
        """Drop the gateway's connection; how many injected messages are then waiting, unacknowledged, again."""
        ...


@dataclass
class Calls:
    """What the handler saw."""

    seen: list[Inbound] = field(default_factory=list)
    given_up: list[tuple[Inbound, BaseException]] = field(default_factory=list)

    async def give_up(self, inbound: Inbound, error: BaseException) -> None:
        """Record the message given up."""
        self.given_up.append((inbound, error))


async def until(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait for `condition()`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


class TransportBehaviour:
    """The suite; a subclass provides the `harness` fixture."""

    @pytest.fixture
    def harness(self) -> Harness:
        """The broker under test (given by each subclass)."""
        raise NotImplementedError

    async def test_a_publish_is_confirmed_and_lands_in_its_queue_as_sent(self, harness: Harness) -> None:
        """Body, MessageId and kind arrive as published, in order."""
        calls = Calls()
        await harness.start(_ok(calls), calls.give_up)
        await harness.publish("itrace.outbound.MZ", b"<one/>", message_id="m-1", kind="Delivery")
        await harness.publish("itrace.outbound.MZ", b"<two/>", message_id="m-2", kind="Receipt")
        got = await harness.outbound("MZ")
        assert got == [Delivered(b"<one/>", "m-1", "Delivery"), Delivered(b"<two/>", "m-2", "Receipt")]

    async def test_a_publish_to_no_queue_is_refused(self, harness: Harness) -> None:
        """A mandatory publish the broker cannot route fails, so the relay keeps the row."""
        calls = Calls()
        await harness.start(_ok(calls), calls.give_up)
        with pytest.raises(PublishFailed):
            await harness.publish("itrace.outbound.XX", b"<lost/>", message_id="m-3", kind="Receipt")

    async def test_a_handled_message_reaches_the_handler_with_its_transport_facts_and_is_acknowledged_once(
        self, harness: Harness
    ) -> None:
        """Routing key (the sender, where no user is validated), MessageId and content type reach the handler; once
        acknowledged, nothing comes back when the gateway's connection drops."""
        calls = Calls()
        await harness.start(_ok(calls), calls.give_up)
        await harness.inject("ZA", b"<request/>", message_id="a-1")
        await until(lambda: len(calls.seen) == 1)
        seen = calls.seen[0]
        assert (seen.body, seen.routing_key, seen.transport_sender) == (b"<request/>", "ZA", "ZA")
        assert (seen.message_id, seen.content_type, seen.attempt, seen.redelivered) == (
            "a-1",
            "application/xml",
            1,
            False,
        )
        await asyncio.sleep(0.1)
        assert await harness.disconnect() == 0
        assert len(calls.seen) == 1

    async def test_a_message_is_not_acknowledged_before_its_handler_returns(self, harness: Harness) -> None:
        """A handler still at work when the connection drops: the message waits in its queue again."""
        calls, release = Calls(), asyncio.Event()

        async def working(inbound: Inbound) -> None:
            calls.seen.append(inbound)
            await release.wait()

        await harness.start(working, calls.give_up)
        await harness.inject("ZA", b"<request/>", message_id="a-2")
        await until(lambda: len(calls.seen) == 1)
        assert await harness.disconnect() == 1
        release.set()

    async def test_a_transient_fault_returns_the_message_and_it_comes_again_marked_redelivered(
        self, harness: Harness
    ) -> None:
        """The database was away: the same message is delivered again, and acknowledged once handled."""
        calls = Calls()

        async def flaky(inbound: Inbound) -> None:
            calls.seen.append(inbound)
            if len(calls.seen) == 1:
                raise TransientError("database unavailable")

        await harness.start(flaky, calls.give_up)
        await harness.inject("ZA", b"<request/>", message_id="a-3")
        await until(lambda: len(calls.seen) == 2)
        assert [c.redelivered for c in calls.seen] == [False, True]
        assert calls.seen[0].body == calls.seen[1].body and calls.given_up == []
        await asyncio.sleep(0.1)
        assert await harness.disconnect() == 0 and len(calls.seen) == 2

    async def test_an_unexpected_fault_is_retried_then_given_up_and_dead_lettered(self, harness: Harness) -> None:
        """Retried up to the transport's attempts; then the sender is told once and the message is kept."""
        calls = Calls()

        async def broken(inbound: Inbound) -> None:
            calls.seen.append(inbound)
            raise RuntimeError("a fault no retry cures")

        await harness.start(broken, calls.give_up)
        await harness.inject("ZA", b"<poison/>", message_id="a-4")
        await until(lambda: len(calls.given_up) == 1)
        assert [c.attempt for c in calls.seen] == [1, 2]
        assert isinstance(calls.given_up[0][1], RuntimeError) and calls.given_up[0][0].body == b"<poison/>"
        held: list[bytes] = []

        async def gather() -> None:
            held.extend(await harness.dead_letters())

        for _ in range(100):
            await gather()
            if held:
                break
            await asyncio.sleep(0.05)
        assert held == [b"<poison/>"]


def _ok(calls: Calls) -> Handler:
    """A handler that records and succeeds."""

    async def handle(inbound: Inbound) -> None:
        calls.seen.append(inbound)

    return handle
