"""Read-only queries for administrators: traces by filter, one trace's whole conversation in order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from gateway.core.model import Trace
from gateway.store.engine import Store
from gateway.store.rows import aware
from gateway.store.statements import select_traces
from gateway.store.tables import deadlines, inbound, outbox


@dataclass(frozen=True)
class Entry:
    """One step of a trace's conversation: a message received or sent, or a deadline notice planned."""

    at: datetime
    direction: str  # in | out | deadline
    kind: str
    party: str  # sender of an inbound message, recipient of an outbound one
    message_id: str | None
    outcome: str  # accepted / refused CODE / queued / sent / pending / fired / cancelled
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {**self.__dict__, "at": self.at.isoformat()}


def _when(value: datetime | None) -> datetime:
    """A stored timestamp as an aware datetime (never missing for these columns)."""
    return aware(value) or datetime(1970, 1, 1, tzinfo=UTC)


async def list_traces(
    store: Store, *, state: str | None = None, role: str | None = None, status: str | None = None
) -> list[Trace]:
    """Traces matching the filters, oldest first."""
    async with store.engine.connect() as conn:
        return await select_traces(conn, state=state, role=role, status=status)


async def find_trace(store: Store, trace_id: str) -> Trace | None:
    """One trace, or None."""
    async with store.engine.connect() as conn:
        found = await select_traces(conn, trace_id=trace_id.lower())
    return found[0] if found else None


async def conversation(store: Store, trace_id: str) -> list[Entry]:
    """Every message of the trace in and out, and its deadline notices, in the order they happened."""
    trace_id = trace_id.lower()
    async with store.engine.connect() as conn:
        received = (await conn.execute(select(inbound).where(inbound.c.trace_id == trace_id))).all()
        sent = (await conn.execute(select(outbox).where(outbox.c.trace_id == trace_id))).all()
        planned = (await conn.execute(select(deadlines).where(deadlines.c.trace_id == trace_id))).all()
    # Same instant: a message before what it caused, in the order they were stored; planned notices last.
    keyed: list[tuple[tuple[datetime, int, int, int], Entry]] = []
    for r in received:
        outcome = r.outcome if r.outcome == "accepted" else f"refused {r.code}"
        entry = Entry(_when(r.received_at), "in", r.kind, r.sender, r.message_id, outcome, r.detail or "")
        keyed.append(((entry.at, 0, r.id, 0), entry))
    for r in sent:
        entry = Entry(_when(r.created_at), "out", r.kind, r.recipient, r.message_id, "sent" if r.sent_at else "queued")
        keyed.append(((entry.at, 0 if r.inbound_id else 1, r.inbound_id or 0, r.id), entry))
    for r in planned:
        entry = Entry(
            _when(r.fire_at),
            "deadline",
            r.kind,
            "",
            None,
            r.status,
            f"due {_when(r.due_at).isoformat(timespec='seconds')}",
        )
        keyed.append(((entry.at, 2, r.id, 0), entry))
    return [entry for _, entry in sorted(keyed, key=lambda pair: pair[0])]
