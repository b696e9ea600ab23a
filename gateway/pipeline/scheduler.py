"""Fires due deadline notices (ISACS 05.31, 8.3.1 and 8.3.4.1) from the durable deadlines table.

Each notice is queued in the outbox and marked fired in one transaction: a restart, or a gateway that was
down when a deadline passed, neither loses nor repeats a notice; overdue ones fire in order when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from gateway.core.deadlines import NoticeKind
from gateway.core.errors import TransientError
from gateway.outbox.seal import seal
from gateway.routing.table import RoutingTable
from gateway.store import OutboxMessage, Store, aware
from gateway.xml import compose
from gateway.xml.signatures import Signer

log = structlog.get_logger("tracegate.scheduler")


class Scheduler:
    """Finds pending notices whose time has come and queues them for the relay."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        table: RoutingTable,
        clock: Callable[[], datetime],
        *,
        interval: float = 30.0,
        batch: int = 500,
        on_commit: Callable[[], None] = lambda: None,
        hand_over: Callable[[Sequence[OutboxMessage]], None] = lambda rows: None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._table = table
        self._clock = clock
        self._interval = interval
        self._batch = batch
        self._on_commit = on_commit
        self._hand_over = hand_over  # the relay's: the committed notices are published without a read-back
        self._stop = asyncio.Event()

    async def fire_due(self) -> int:
        """Queue every notice due now, in the order they fell due; returns how many were fired."""
        fired = 0
        while True:
            count = await self._fire_batch()
            fired += count
            if count < self._batch:
                return fired

    async def _fire_batch(self) -> int:
        """One transaction: notices for up to `batch` due rows, and the rows marked fired."""
        now = self._clock()
        async with self._store.transaction() as tx:
            rows = await tx.due_notices(now, self._batch)
            queued: list[OutboxMessage] = []
            for row in rows:
                trace = await tx.get_trace(row.trace_id)
                if trace is None:
                    continue
                kind = NoticeKind(row.kind)
                recipients = [trace.party, trace.requester] if kind.overdue else [trace.party]
                for recipient in recipients:
                    root = compose.deadline_notice(
                        now=now, trace_id=trace.trace_id, kind=kind.value, due_at=aware(row.due_at) or now
                    )
                    queued.append(seal(self._signer, self._table, "DeadlineNotice", recipient, root))
                log.info("deadline", trace_id=trace.trace_id, kind=kind.value, to=recipients)
            await tx.add_outbox(queued, inbound_id=None, now=now)
            await tx.mark_fired(rows, now)
        if rows:
            self._hand_over(tx.queued)
            self._on_commit()
        return len(rows)

    async def run(self) -> None:
        """Fire due notices every `interval` seconds until `stop`; a database fault waits for the next turn."""
        while not self._stop.is_set():
            try:
                await self.fire_due()
            except TransientError as err:
                log.warning("deadline scan postponed", error=str(err))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self._interval)

    def stop(self) -> None:
        """Stop after the current scan."""
        self._stop.set()
