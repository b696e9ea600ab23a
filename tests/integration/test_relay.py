"""The relay as `serve` runs it: committed rows handed over in memory, published once each, marked sent later."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import func, select

from gateway.core.ports import Inbound
from gateway.dev import samples
from gateway.outbox.relay import OutboxRelay
from gateway.store import aware, outbox

from .conftest import Switch

TO_MZ = [("ZA", "MZ", "2019-06-14")]


async def _until(condition: object, seconds: float = 10.0) -> None:
    """Wait for `condition()` to hold."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def _published(switch: Switch) -> Counter[str]:
    """How often each MessageId reached the broker."""
    return Counter(p.message_id for queue in switch.broker.queues.values() for p in queue)


async def test_every_committed_row_is_published_exactly_once_and_marked_sent(switch: Switch) -> None:
    """Rows handed over while the relay also polls are each published once and all end marked sent."""
    relay = OutboxRelay(switch.store, switch.broker, switch.clock, idle_poll=0.005, mark_delay=0.005)
    switch.pipeline.hand_over = relay.hand_over  # as `serve` wires it
    running = asyncio.create_task(relay.run())
    try:
        for _ in range(6):  # rounds of concurrent messages, while the relay polls the database all the time
            bodies = [switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ)) for _ in range(8)]
            await asyncio.gather(*(switch.pipeline.handle(Inbound(b, routing_key="ZA", user_id="ZA")) for b in bodies))
        await _until(lambda: sum(_published(switch).values()) >= 96)
        await asyncio.sleep(0.2)
        counts = _published(switch)
        assert len(counts) == 96 and set(counts.values()) == {1}, counts.most_common(3)

        async def unmarked() -> int:
            rows = await switch.store.fetch(select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None)))
            return int(rows[0][0])

        for _ in range(200):
            if await unmarked() == 0:
                break
            await asyncio.sleep(0.02)
        assert await unmarked() == 0
    finally:
        await relay.drain()
        running.cancel()


async def test_rows_the_broker_refused_are_published_when_it_is_back(switch: Switch) -> None:
    """Rows the broker would not take stay unsent and go out once it takes them again."""
    relay = OutboxRelay(switch.store, switch.broker, switch.clock, idle_poll=0.05)
    switch.pipeline.hand_over = relay.hand_over
    running = asyncio.create_task(relay.run())
    try:
        switch.broker.fail_publishing = True
        body = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ))
        outcome = await switch.pipeline.handle(Inbound(body=body, routing_key="ZA", user_id="ZA"))
        await asyncio.sleep(0.3)
        assert sum(_published(switch).values()) == 0
        assert len(await switch.store.unsent()) == 2  # kept: the Delivery and the Receipt
        switch.broker.fail_publishing = False
        await _until(lambda: sum(_published(switch).values()) == 2, seconds=15)
        assert [d.find("Header/TraceId") for d in switch.take("MZ")] == [outcome.trace_id]
    finally:
        await relay.drain()
        running.cancel()


async def test_a_poll_while_a_commit_returns_leaves_its_rows_to_the_commit(switch: Switch) -> None:
    """Rows are visible to other readers from the moment they commit, but the committer hands them to the relay
    only when the unit of work returns: a poll between the two must not publish them (the hand-over would then
    publish them a second time)."""
    committed, release = asyncio.Event(), asyncio.Event()
    units = switch.pipeline.units

    class Held:
        """The store's unit of work, held after its commit until `release`."""

        def __init__(self, uow: Any) -> None:
            self.uow = uow

        async def load(self, wanted: Any) -> Any:
            return await self.uow.load(wanted)

        async def commit(self, effects: Any, **kw: Any) -> Any:
            rows = await self.uow.commit(effects, **kw)
            committed.set()  # durable and visible to a poll, not yet handed over
            await release.wait()
            return rows

    @asynccontextmanager
    async def held() -> AsyncIterator[Held]:
        async with units() as uow:
            yield Held(uow)

    relay = OutboxRelay(switch.store, switch.broker, switch.clock)
    switch.pipeline.hand_over = relay.hand_over
    switch.pipeline.units = held
    body = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ))
    handling = asyncio.create_task(switch.pipeline.handle(Inbound(body=body, routing_key="ZA", user_id="ZA")))
    await asyncio.wait_for(committed.wait(), timeout=10)
    assert len(await switch.store.fetch(select(outbox))) == 2  # committed: a poll reads them
    assert await switch.store.unsent() == []  # but they are the committing batch's to hand over
    release.set()
    await asyncio.wait_for(handling, timeout=10)
    await _until(lambda: sum(_published(switch).values()) == 2)
    await asyncio.sleep(0.05)
    assert set(_published(switch).values()) == {1}
    await relay.drain()


async def test_sent_marks_written_through_the_driver_read_back_as_the_confirm_time(switch: Switch) -> None:
    """A mark the relay writes (driver-level, in its own transaction) holds the confirm's time, read back exact."""
    body = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ))
    await switch.pipeline.handle(Inbound(body=body, routing_key="ZA", user_id="ZA"))
    rows = await switch.store.unsent()
    assert len(rows) == 2
    confirmed = switch.clock.now
    await switch.store.mark_sent({rows[0].id: confirmed})
    stored = await switch.store.fetch(select(outbox.c.id, outbox.c.sent_at).order_by(outbox.c.id))
    assert [(r.id, aware(r.sent_at)) for r in stored] == [(rows[0].id, confirmed), (rows[1].id, None)]
    assert [r.id for r in await switch.store.unsent()] == [rows[1].id]
