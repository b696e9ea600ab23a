"""Group commit: messages handled at the same time are decided in arrival order inside one transaction.

What a state sees must not change with the batching: every message its own outcome, a repeat answered with the
first answer's bytes, a later message of a batch seeing what an earlier one did, one failing message holding up
no other, and an audit chain that verifies and replays exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import select

from gateway.audit.replay import replay
from gateway.core.decide import Decided, decide
from gateway.core.effects import Outcome
from gateway.core.ports import Inbound
from gateway.core.snapshot import Arrival, Rules, Snapshot
from gateway.dev import samples
from gateway.store import deadlines

from .conftest import Switch
from .test_audit import verified

TO_MZ = [("ZA", "MZ", "2019-06-14")]


@pytest.fixture
def transactions(switch: Switch) -> list[int]:
    """Counts the committer's units of work, each one transaction (one entry per transaction)."""
    counted: list[int] = []
    units = switch.pipeline.units

    @asynccontextmanager
    async def counting() -> AsyncIterator[Any]:
        counted.append(1)
        async with units() as uow:
            yield uow

    switch.pipeline.units = counting
    return counted


async def together(switch: Switch, bodies: list[tuple[str, bytes]]) -> list[Outcome]:
    """Hand every message to the gateway at once, as a broker with prefetch would; then relay."""
    outcomes = await asyncio.gather(
        *(switch.pipeline.handle(Inbound(body=body, routing_key=state, user_id=state)) for state, body in bodies)
    )
    await switch.relay.relay_once()
    return list(outcomes)


async def test_messages_arriving_together_share_a_transaction_and_keep_their_own_outcomes(
    switch: Switch, transactions: list[int]
) -> None:
    """Fourteen messages at once: few transactions, each its own outcome, a repeat answered with the first bytes."""
    await _a_batch_of_fourteen(switch, transactions)


async def test_with_crypto_threads_a_batch_keeps_the_same_outcomes(switch: Switch, transactions: list[int]) -> None:
    """`crypto_threads` > 0: checks on a thread pool, the committer's signing on a thread of its own."""
    with ThreadPoolExecutor(2, thread_name_prefix="crypto") as crypto, ThreadPoolExecutor(1) as signing:
        switch.pipeline.crypto, switch.pipeline.signing = crypto, signing
        await _a_batch_of_fourteen(switch, transactions)


async def _a_batch_of_fourteen(switch: Switch, transactions: list[int]) -> None:
    requests = [switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ)) for _ in range(12)]
    unsigned = b"<t:TraceRequest xmlns:t='urn:itrace:1'/>"
    bodies = [("ZA", body) for body in requests] + [("ZA", requests[3]), ("BR", unsigned)]

    outcomes = await together(switch, bodies)

    assert [o.outcome for o in outcomes] == ["accepted"] * 12 + ["duplicate", "refused"]
    assert outcomes[12].message_id == outcomes[3].message_id
    assert outcomes[13].code == "SCHEMA_INVALID"
    assert len(transactions) < len(bodies) / 2, f"{len(transactions)} transactions for {len(bodies)} messages"
    deliveries = switch.take("MZ")
    assert sorted(d.find("Header/TraceId") or "" for d in deliveries) == sorted(o.trace_id or "" for o in outcomes[:12])
    to_za = switch.take("ZA")
    receipts = [r for r in to_za if r.find("AcceptedMessageId") == outcomes[3].message_id]
    assert len(receipts) == 2 and receipts[0].body == receipts[1].body  # the repeat got the first answer's bytes
    assert [r.kind for r in switch.take("BR")] == ["Rejection"]
    report = await verified(switch)
    assert report.problems == (), report.problems
    assert (await replay(switch.store, switch.settings)).divergences == ()


async def test_a_later_message_of_a_batch_sees_what_an_earlier_one_did(switch: Switch) -> None:
    """An acknowledgement in the same batch as its request settles the request's acknowledgement notices."""
    request = samples.trace_request("ZA", exports=TO_MZ)
    trace_id = request.findtext("{urn:itrace:1}Header/{urn:itrace:1}MessageId") or ""
    acknowledgement = samples.reply("Acknowledgement", "MZ", trace_id)

    opened, acknowledged = await together(
        switch, [("ZA", switch.sign("ZA", request)), ("MZ", switch.sign("MZ", acknowledgement))]
    )

    assert (opened.outcome, acknowledged.outcome) == ("accepted", "accepted"), acknowledged.detail
    rows = await switch.store.fetch(select(deadlines).where(deadlines.c.trace_id == trace_id))
    pending = sorted(r.kind for r in rows if r.status == "pending")
    assert pending and not any(k.startswith("acknowledgement") for k in pending), pending
    assert any(r.status == "cancelled" and r.kind.startswith("acknowledgement") for r in rows)


async def test_one_message_that_cannot_be_processed_holds_up_no_other(switch: Switch) -> None:
    """A fault no retry cures, in deciding one message of a batch: that message fails, the rest commit."""
    poisoned = samples.trace_request("ZA", exports=TO_MZ, serial="POISON")
    healthy = [samples.trace_request("ZA", exports=TO_MZ) for _ in range(5)]

    def failing(snapshot: Snapshot, arrivals: Sequence[Arrival], rules: Rules) -> tuple[Decided, ...]:
        if any(b"POISON" in a.body for a in arrivals):
            raise RuntimeError("a fault no retry cures")
        return decide(snapshot, arrivals, rules)

    switch.pipeline.committer.decide = failing
    bodies = [("ZA", switch.sign("ZA", m)) for m in [healthy[0], healthy[1], poisoned, *healthy[2:]]]
    results = await asyncio.gather(
        *(switch.pipeline.handle(Inbound(body=b, routing_key=s, user_id=s)) for s, b in bodies), return_exceptions=True
    )

    assert isinstance(results[2], RuntimeError)
    assert [r.outcome for i, r in enumerate(results) if i != 2] == ["accepted"] * 5  # type: ignore[union-attr]
    await switch.relay.relay_once()
    assert len(switch.take("MZ")) == 5
    assert (await verified(switch)).problems == ()
