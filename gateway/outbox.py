"""The outbox relay: publishes committed gateway messages with broker confirms, then marks them sent."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

import structlog
from lxml import etree

from gateway.errors import TransientError
from gateway.model import NS
from gateway.ports import Publisher, PublishFailed
from gateway.routing.table import RoutingTable
from gateway.signatures import Signer
from gateway.store import OutboxMessage, Store

log = structlog.get_logger("tracegate.outbox")
_T = f"{{{NS}}}"


def seal(signer: Signer, table: RoutingTable, kind: str, recipient: str, root: etree._Element) -> OutboxMessage:
    """Sign a gateway message and address it to the recipient's queue: the exact bytes that will be sent."""
    body = signer.sign(root)
    entry = table.entry(recipient)
    return OutboxMessage(
        message_id=root.findtext(f"{_T}Header/{_T}MessageId") or "",
        recipient=recipient,
        queue=entry.queue if entry else f"itrace.outbound.{recipient}",
        kind=kind,
        trace_id=root.findtext(f"{_T}Header/{_T}TraceId"),
        body=body,
    )


class OutboxRelay:
    """Moves outbox rows to the broker; a row is marked sent only after the broker confirmed it.

    A crash between the confirm and the mark re-sends the row with the same MessageId, which a
    recipient drops as a repeat: at-least-once on the wire, exactly-once in effect.
    """

    def __init__(
        self,
        store: Store,
        publisher: Publisher,
        clock: Callable[[], datetime],
        *,
        batch: int = 200,
        idle_poll: float = 1.0,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._clock = clock
        self._batch = batch
        self._idle_poll = idle_poll
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Tell the relay new rows were committed."""
        self._wake.set()

    async def run(self) -> None:
        """Relay until `stop`; a broker fault pauses and retries without losing rows."""
        while not self._stopping:
            try:
                sent = await self.relay_once()
            except (PublishFailed, TransientError) as err:
                log.warning("relay paused", error=str(err))
                sent = 0
                await asyncio.sleep(min(self._idle_poll, 1.0))
            if sent == 0 and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._idle_poll)

    async def relay_once(self) -> int:
        """Publish one batch of unsent rows; returns how many the broker confirmed."""
        rows = await self._store.unsent(self._batch)
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
        """Relay what is left, then stop (used on SIGTERM)."""
        self._stopping = True
        self._wake.set()
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            try:
                if await self.relay_once() == 0:
                    return
            except (PublishFailed, TransientError):
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Stop after the current batch."""
        self._stopping = True
        self._wake.set()
