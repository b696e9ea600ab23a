"""Group commit: checked messages wait here; each batch is loaded, decided, signed and committed in one
transaction, in one direction:

    snapshot = uow.load(wanted(batch))        one read per batch
    decided  = decide(snapshot, batch, rules)  pure: no await, no I/O, frozen results
    sealed   = sign(outgoing of decided)       explicit, on the signing thread if there is one
    rows     = uow.commit(effects)             the committed outbox rows, with their ids
    the rows go to the relay, and each message learns its outcome (its handler acks it)

Under load a transaction carries many messages (its statements and its sync shared by all); alone, a message
commits at once. A database fault fails the whole batch (nothing was committed; each message is retried); any
other fault is isolated by committing the batch's messages again one by one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import structlog

from gateway.core.decide import Decided, decide
from gateway.core.effects import Effects, OutboxMessage, Outcome
from gateway.core.errors import TransientError
from gateway.core.requests import Unsigned
from gateway.core.snapshot import Arrival, Rules, Snapshot, Wanted, wanted
from gateway.routing.table import RoutingTable

log = structlog.get_logger("tracegate.pipeline")
# The loop turns a committed batch needs before its acks and publishes are on the socket: the handlers and the
# relay's tasks resume (1) and queue their frames for the AMQP client's writer task (2), which writes them (3).
# See docs/performance.md ("Group commit").
TURNS_AFTER_COMMIT = 3


class UnitOfWork(Protocol):
    """One batch's transaction, as the committer uses it (`store.SqlUnitOfWork`; tests have a fake)."""

    async def load(self, wanted: Wanted) -> Snapshot:
        """What the batch's decisions need, as stored now."""
        ...

    async def commit(
        self, effects: Sequence[Effects], *, table: RoutingTable | None = None, now: datetime | None = None
    ) -> list[OutboxMessage]:
        """Write and commit; the outbox rows written, with their ids."""
        ...


UnitsOfWork = Callable[[], AbstractAsyncContextManager[UnitOfWork]]
Decide = Callable[[Snapshot, Sequence[Arrival], Rules], tuple[Decided, ...]]
Sign = Callable[[Sequence[Unsigned]], Awaitable[list[OutboxMessage]]]


@dataclass
class _Waiting:
    """A checked message waiting for the committer."""

    arrival: Arrival
    done: asyncio.Future[Outcome]


def effects_of(decided: Sequence[Decided], sealed: Sequence[OutboxMessage]) -> list[Effects]:
    """What the store writes for decided messages, given their outgoing messages signed in order; a repeat of a
    message of the same batch gets the signed answers that message sent its sender."""
    signed = iter(sealed)
    effects: list[Effects] = []
    for d in decided:
        outgoing = tuple(next(signed) for _ in d.outgoing)
        if d.repeat_of is not None:
            first = effects[d.repeat_of]
            resend = tuple(m for m in first.outgoing if m.recipient == d.outcome.sender)
            effects.append(Effects(None, outgoing=resend, at=d.at))
        elif d.record is None:
            effects.append(Effects(None, outgoing=d.resend, at=d.at))
        else:
            effects.append(
                Effects(
                    d.record,
                    trace=d.trace,
                    new_trace=d.new_trace,
                    settle=d.settle,
                    plan=d.plan,
                    outgoing=outgoing,
                    register=d.register,
                    hits=d.hits,
                )
            )
    return effects


@dataclass
class GroupCommitter:
    """Commits checked messages in batches of at most `max_batch`, in arrival order."""

    units: UnitsOfWork
    rules: Callable[[], Rules]
    sign: Sign
    hand_over: Callable[[Sequence[OutboxMessage]], None] = lambda rows: None
    max_batch: int = 64
    decide: Decide = decide
    _waiting: list[_Waiting] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    async def submit(self, arrival: Arrival) -> Outcome:
        """Wait for the commit that holds this message; its outcome (or the fault, for the caller to retry)."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(arrival, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")
        return await done

    async def _run(self) -> None:
        """Commit the waiting messages, up to `max_batch` per transaction, until none wait."""
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: len(batch)]
            await self._commit(batch)
            # Let the committed messages be acknowledged and relayed before deciding the next batch (the next
            # batch gathers whatever arrives meanwhile).
            for _ in range(TURNS_AFTER_COMMIT):
                await asyncio.sleep(0)

    async def _commit(self, batch: list[_Waiting]) -> None:
        """One batch, one transaction; every message learns its outcome or the fault."""
        started = time.perf_counter()
        try:
            outcomes, rows = await self._transact([w.arrival for w in batch])
        except TransientError as err:
            for w in batch:
                if not w.done.done():
                    w.done.set_exception(err)
            return
        except Exception as err:
            if len(batch) == 1:
                if not batch[0].done.done():
                    batch[0].done.set_exception(err)
                return
            log.warning("a batch failed; committing its messages one by one", size=len(batch), error=repr(err))
            for w in batch:
                await self._commit([w])
            return
        log.debug("batch committed", size=len(batch), ms=round((time.perf_counter() - started) * 1000, 2))
        # The rows first: their publishes start before the handlers resume to ack, so their confirms come back
        # sooner (the broker adapter takes no new delivery while too many publishes await confirms).
        self.hand_over(rows)
        for w, outcome in zip(batch, outcomes, strict=True):
            if not w.done.done():
                w.done.set_result(outcome)

    async def _transact(self, arrivals: list[Arrival]) -> tuple[list[Outcome], list[OutboxMessage]]:
        """Load, decide, sign, commit: the outcomes, and the committed outbox rows."""
        rules = self.rules()
        async with self.units() as uow:
            snapshot = await uow.load(wanted(arrivals))
            decided = self.decide(snapshot, arrivals, rules)
            for d in decided:
                if d.unanswered:
                    log.warning(d.unanswered, sender=d.outcome.sender[:16], code=d.outcome.code)
            sealed = await self.sign([u for d in decided for u in d.outgoing])
            effects = effects_of(decided, sealed)
            rows = await uow.commit(effects, table=rules.table, now=arrivals[0].now)
        return [d.outcome for d in decided], rows
