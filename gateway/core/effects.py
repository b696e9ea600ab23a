"""What a decided message changes, as values: its record, its trace, its notices, the messages it causes.

`decide` returns these; the store writes them; the relay publishes the sealed outbox rows. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from gateway.core.deadlines import PlannedNotice
from gateway.core.model import Trace
from gateway.records.register import Hit, RegisterChange


@dataclass(frozen=True)
class InboundRecord:
    """One received message and what the gateway decided about it."""

    sender: str
    dedup_key: str
    message_id: str | None
    kind: str
    trace_id: str | None
    received_at: datetime
    body: bytes
    sha256: str
    outcome: str
    code: str | None = None
    detail: str | None = None
    rule: str | None = None
    table_version: str | None = None


@dataclass(frozen=True)
class OutboxMessage:
    """A signed gateway message waiting to be published (or already published)."""

    message_id: str
    recipient: str
    queue: str
    kind: str
    trace_id: str | None
    body: bytes
    id: int = 0
    inbound_id: int | None = None


@dataclass(frozen=True)
class Effects:
    """Everything one decided message changes; a unit of work writes the effects of many messages in bulk.

    With no `record`, the effects of a repeated message: its first answers sent again (`outgoing`), nothing else.
    """

    record: InboundRecord | None
    trace: Trace | None = None
    new_trace: bool = False
    settle: frozenset[str] = frozenset()
    plan: Sequence[PlannedNotice] = ()
    outgoing: Sequence[OutboxMessage] = field(default_factory=tuple)
    at: datetime | None = None  # when, for a repeat (a record carries its own time)
    register: Sequence[RegisterChange] = ()  # register records reported, updated or withdrawn
    hits: Sequence[Hit] = ()  # register records a trace request's firearm matched

    @property
    def when(self) -> datetime:
        """The time these effects take place."""
        if self.record is not None:
            return self.record.received_at
        assert self.at is not None
        return self.at


@dataclass(frozen=True)
class Outcome:
    """What became of one inbound message (for logs, the demo and tests)."""

    outcome: str  # accepted | refused | duplicate
    kind: str
    message_id: str | None
    sender: str
    code: str | None = None
    detail: str | None = None
    trace_id: str | None = None
    routed_to: str | None = None
    rule: str | None = None
