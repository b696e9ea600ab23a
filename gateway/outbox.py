"""The outbox relay: publishes committed gateway messages with broker confirms, then marks them sent."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog
from lxml import etree

from gateway.errors import OutboundTooLarge, TransientError
from gateway.model import MAX_MESSAGE_BYTES, NS
from gateway.ports import Publisher, PublishFailed
from gateway.routing.table import RoutingTable
from gateway.signatures import Signer
from gateway.store import OutboxMessage, Store

log = structlog.get_logger("tracegate.outbox")
_T = f"{{{NS}}}"


def seal(
    signer: Signer,
    table: RoutingTable,
    kind: str,
    recipient: str,
    root: etree._Element,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
) -> OutboxMessage:
    """Sign a gateway message and address it to the recipient's queue: the exact bytes that will be sent, never more
    than `max_bytes` (the contract's cap binds the gateway too: `OutboundTooLarge` otherwise)."""
    body = signer.sign(root)
    if len(body) > max_bytes:
        raise OutboundTooLarge(f"a {kind} for {recipient} came to {len(body)} bytes, over the {max_bytes}-byte cap")
    entry = table.entry(recipient)
    header = next(root.iterchildren(f"{_T}Header"))  # composed by the gateway: always the first child
    return OutboxMessage(
        message_id=next(header.iterchildren(f"{_T}MessageId")).text or "",
        recipient=recipient,
        queue=entry.queue if entry else f"itrace.outbound.{recipient}",
        kind=kind,
        trace_id=next((e.text for e in header.iterchildren(f"{_T}TraceId")), None),
        body=body,
    )


class OutboxRelay:
    """Moves outbox rows to the broker; a row is marked sent only after the broker confirmed it.

    Rows a commit wrote are handed over in memory (`hand_over`) and published at once, each with its own
    confirm, many in flight; their sent marks ride on the next commit. The database is read for unsent rows
    on start, when woken, after a fault and every `idle_poll` seconds: rows of an earlier run, or of a commit
    whose hand-over was lost. A crash between the confirm and the mark re-sends the row with the same
    MessageId, which a recipient drops as a repeat: at-least-once on the wire, exactly-once in effect.
    """

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        clock: Callable[[], datetime],
        *,
        batch: int = 200,
        idle_poll: float = 1.0,
        mark_delay: float = 0.2,
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
        while not self._stopping:
            self._wake.clear()
            if self._poll_due and loop.time() >= self._paused_until:
                self._poll_due = False
                try:
                    self.hand_over(await self._store.unsent(self._batch))
                except TransientError as err:
                    log.warning("relay paused", error=str(err))
                    self._pause()
            while self._ready and loop.time() >= self._paused_until and not self._stopping:
                self._start(self._ready.popleft())
            timeout = self._mark_delay if self._store.marks_waiting else self._idle_poll
            if self._paused_until > loop.time():
                timeout = min(timeout, self._paused_until - loop.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                self._poll_due = True
                await self._write_marks()

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
        self._store.sent_later([row.id], self._clock())
        self._held.discard(row.id)

    async def _write_marks(self) -> None:
        """Mark confirmed rows sent when no commit has carried the marks for a while."""
        try:
            await self._store.write_sent_marks()
        except TransientError as err:
            log.warning("sent marks postponed", error=str(err))

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows read from the database; returns how many the broker confirmed."""
        rows = [row for row in await self._store.unsent(self._batch) if row.id not in self._held]
        if not rows:
            return 0
        results = await asyncio.gather(*(self._publish(row) for row in rows), return_exceptions=True)
        confirmed = [row.id for row, result in zip(rows, results, strict=True) if result is None]
        await self._store.mark_sent(confirmed, self._clock())
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
        await self._write_marks()
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
