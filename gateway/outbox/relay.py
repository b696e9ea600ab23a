"""The outbox relay: publishes committed gateway messages with broker confirms, then marks them sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from gateway.core.effects import OutboxMessage
from gateway.core.errors import TransientError
from gateway.core.ports import Publisher, PublishFailed
from gateway.outbox.seal import seal
from gateway.store import Store

log = structlog.get_logger("tracegate.outbox")
__all__ = ["OutboxRelay", "seal"]


class OutboxRelay:
    """Moves outbox rows to the broker; a row is marked sent only after the broker confirmed it.

    Rows a commit wrote are handed over in memory (`hand_over`) and published at once, each with its own
    confirm, many in flight; the relay marks confirmed rows sent itself, gathered into one write every
    `mark_delay` seconds (each write takes the store's turn and a sync: once a second costs the committer little).
    The database is read for unsent rows on start, when woken, after a fault and every `idle_poll` seconds: rows of
    an earlier run, or of a commit whose hand-over was lost. A crash between the confirm and the mark re-sends the
    row with the same MessageId, which a recipient drops as a repeat: at-least-once on the wire, exactly-once in
    effect.
    """

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        clock: Callable[[], datetime],
        *,
        batch: int = 200,
        idle_poll: float = 1.0,
        mark_delay: float = 1.0,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._batch = batch
        self._idle_poll = idle_poll
        self._mark_delay = mark_delay
        self._wake = asyncio.Event()
        self._stopping = False
        self._ready: deque[OutboxMessage] = deque()
        self._held: set[int] = set()  # handed over or being published, not yet confirmed
        self._sending: set[asyncio.Task[None]] = set()
        self._poll_due = True
        self._paused_until = 0.0
        self._confirmed: dict[int, datetime] = {}  # confirmed by the broker, to be marked sent
        self._marking: dict[int, datetime] = {}  # being marked now
        self._marks_written = 0  # mark writes done
        self._marked: dict[int, int] = {}  # rows marked sent, with the write that did it (for reads begun before)

    def wake(self) -> None:
        """Tell the relay rows were committed that were not handed over: it reads the database."""
        self._poll_due = True
        self._wake.set()

    def hand_over(self, rows: Sequence[OutboxMessage]) -> None:
        """Rows just committed (with their ids): published at once, without reading them back."""
        ready = not self._stopping and asyncio.get_running_loop().time() >= self._paused_until
        for row in rows:
            if row.id not in self._held:
                self._held.add(row.id)
                if ready:
                    self._start(row)
                else:
                    self._ready.append(row)
        self._wake.set()

    def _start(self, row: OutboxMessage) -> None:
        """Publish one row in a task of its own."""
        task = asyncio.create_task(self._send(row))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def run(self) -> None:
        """Relay until `stop`; a broker fault pauses and retries without losing rows."""
        loop = asyncio.get_running_loop()
        marker = asyncio.create_task(self._mark_now_and_then(), name="sent-marks")
        try:
            await self._relay(loop)
        finally:
            marker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await marker

    async def _mark_now_and_then(self) -> None:
        """Every `mark_delay` seconds, the rows confirmed meanwhile marked sent in one write."""
        while not self._stopping:
            await asyncio.sleep(self._mark_delay)
            await self.write_marks()

    async def _relay(self, loop: asyncio.AbstractEventLoop) -> None:
        """The relay's turns: read the database when due, start what is ready, wait to be woken."""
        while not self._stopping:
            self._wake.clear()
            if self._poll_due and loop.time() >= self._paused_until:
                self._poll_due = False
                try:
                    self.hand_over(await self._unsent())
                except TransientError as err:
                    log.warning("relay paused", error=str(err))
                    self._pause()
            while self._ready and loop.time() >= self._paused_until and not self._stopping:
                self._start(self._ready.popleft())
            timeout = self._idle_poll
            if self._paused_until > loop.time():
                timeout = min(timeout, self._paused_until - loop.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                self._poll_due = True

    def _pause(self) -> None:
        """After a fault: publish nothing for a second, then read the database again."""
        self._paused_until = asyncio.get_running_loop().time() + min(self._idle_poll, 1.0)
        self._poll_due = True

    async def _send(self, row: OutboxMessage) -> None:
        """Publish one row; on the confirm, note it for marking; on a fault, leave it unsent for a later poll."""
        try:
            await self._publish(row)
        except PublishFailed as err:
            log.warning("relay paused", error=str(err))
            self._held.discard(row.id)
            self._pause()
            self._wake.set()
            return
        self._confirmed[row.id] = self._clock()
        self._held.discard(row.id)

    async def _unsent(self) -> list[OutboxMessage]:
        """Unsent rows in the database that this relay does not hold: not in flight, not confirmed and waiting for
        their mark, not marked by a write that committed while this read was under way (its snapshot may
        predate the mark)."""
        began = self._marks_written
        rows = await self._store.unsent(self._batch)
        skip = self._held | self._confirmed.keys() | self._marking.keys() | self._marked.keys()
        self._marked = {i: w for i, w in self._marked.items() if w > began}  # later reads see those marks
        return [row for row in rows if row.id not in skip]

    async def write_marks(self) -> None:
        """Mark the rows confirmed so far sent now, in one write of the relay's own (also every `mark_delay`)."""
        if not self._confirmed:
            return
        self._marking, self._confirmed = self._confirmed, {}
        try:
            await self._store.mark_sent(self._marking)
        except TransientError as err:
            self._confirmed = {**self._marking, **self._confirmed}
            log.warning("sent marks postponed", error=str(err))
            return
        finally:
            marking, self._marking = self._marking, {}
        self._marks_written += 1
        self._marked.update(dict.fromkeys(marking, self._marks_written))

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows read from the database; returns how many the broker confirmed."""
        rows = await self._unsent()
        if not rows:
            return 0
        results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
        confirmed = [row.id for row, result in zip(rows, results, strict=True) if result is None]
        await self._store.mark_sent(dict.fromkeys(confirmed, self._clock()))
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise PublishFailed(f"{len(failures)} of {len(rows)} messages not confirmed: {failures[0]}")
        return len(confirmed)

    async def _publish(self, row: OutboxMessage) -> None:
        """One confirmed publish."""
        await self._publisher.publish(row.queue, row.body, message_id=row.message_id, kind=row.kind)

    async def drain(self, timeout: float = 10.0) -> None:
        """Finish what is in flight, relay what is left, mark it sent, then stop (used on SIGTERM)."""
        self._stopping = True
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + timeout
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=timeout)
        self._ready.clear()
        self._held.clear()
        await self.write_marks()
        while asyncio.get_running_loop().time() < deadline:
            try:
                if await self.relay_once() == 0:
                    return
            except (PublishFailed, TransientError):
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Stop after the current turn."""
        self._stopping = True
        self._wake.set()
