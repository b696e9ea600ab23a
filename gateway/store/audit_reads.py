"""What the auditor reads: the chain in order, every stored row, the bytes behind a record, on one connection.

`Store.snapshot()` opens one read transaction over all of it (records and rows a gateway commits meanwhile are
neither half seen nor taken for tampering); `Store.reading()` a plain connection for short reads.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import DateTime, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.chain import Record
from gateway.store.tables import (
    audit,
    audit_head,
    deadlines,
    inbound,
    outbox,
    record_history,
    record_hits,
    records,
    routing_tables,
    traces,
)

# Every column of a trace's row but its key and `updated_at`, and which of them hold times.
TRACE_STATE_COLUMNS: tuple[str, ...] = tuple(c.name for c in traces.c if c.name not in ("trace_id", "updated_at"))
TRACE_TIME_COLUMNS: frozenset[str] = frozenset(c.name for c in traces.c if isinstance(c.type, DateTime))


def record_of(row: Any) -> Record:
    """A chain record from its row."""
    return Record(row.seq, row.at, row.type, row.trace_id, row.body_sha256, row.data, row.prev_hash, row.hash)


class StoredRows:
    """Read-only queries over one connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def records(self, after: int, limit: int, *, upto: int | None = None) -> list[Record]:
        """Up to `limit` audit records after record `after` (and at most `upto`), in order."""
        q = select(audit).where(audit.c.seq > after)
        if upto is not None:
            q = q.where(audit.c.seq <= upto)
        return [record_of(row) for row in (await self._conn.execute(q.order_by(audit.c.seq).limit(limit))).all()]

    async def chain(self, batch: int = 5000) -> AsyncIterator[Record]:
        """The whole chain in order, read in batches on this connection."""
        after = 0
        while rows := await self.records(after, batch):
            for row in rows:
                yield row
            after = rows[-1].seq

    async def count_records(self, record_type: str | None = None, *, upto: int | None = None) -> int:
        """How many records (of a type, up to a number) the chain holds."""
        q = select(func.count()).select_from(audit)
        if record_type is not None:
            q = q.where(audit.c.type == record_type)
        if upto is not None:
            q = q.where(audit.c.seq <= upto)
        return int((await self._conn.execute(q)).scalar_one())

    async def last_seq(self) -> int:
        """The number of the chain's last record (0 for an empty chain)."""
        return int((await self._conn.execute(select(func.max(audit.c.seq)))).scalar() or 0)

    async def head(self) -> Row[Any] | None:
        """The chain's head row."""
        return (await self._conn.execute(select(audit_head))).first()

    async def inbound(self) -> AsyncIterator[Row[Any]]:
        """Every received message, in order."""
        async for row in await self._conn.stream(select(inbound).order_by(inbound.c.id)):
            yield row

    async def outbox(self) -> AsyncIterator[Row[Any]]:
        """Every gateway message queued, in order."""
        async for row in await self._conn.stream(select(outbox).order_by(outbox.c.id)):
            yield row

    async def traces(self) -> AsyncIterator[Row[Any]]:
        """Every trace, by TraceId."""
        async for row in await self._conn.stream(select(traces).order_by(traces.c.trace_id)):
            yield row

    async def deadlines(self) -> list[Row[Any]]:
        """Every deadline notice, planned, fired or cancelled, in order."""
        return list((await self._conn.execute(select(deadlines).order_by(deadlines.c.id))).all())

    async def routing_tables(self) -> list[Row[Any]]:
        """Every routing table version kept."""
        return list((await self._conn.execute(select(routing_tables))).all())

    async def inbound_body(self, inbound_id: int) -> bytes | None:
        """The bytes of a received message."""
        q = select(inbound.c.body).where(inbound.c.id == inbound_id)
        value: bytes | None = (await self._conn.execute(q)).scalar_one_or_none()
        return value

    async def outbox_body(self, outbox_id: int) -> bytes | None:
        """The bytes of a gateway message."""
        q = select(outbox.c.body).where(outbox.c.id == outbox_id)
        value: bytes | None = (await self._conn.execute(q)).scalar_one_or_none()
        return value

    async def table_content(self, version: str) -> str | None:
        """A kept routing table's content."""
        q = select(routing_tables.c.content).where(routing_tables.c.version == version)
        value: str | None = (await self._conn.execute(q)).scalar_one_or_none()
        return value

    async def inbound_by_id(self, ids: Sequence[int]) -> dict[int, Row[Any]]:
        """Received messages by row id: sender, slot, MessageId and bytes."""
        q = select(inbound.c.id, inbound.c.sender, inbound.c.dedup_key, inbound.c.message_id, inbound.c.body).where(
            inbound.c.id.in_(list(ids))
        )
        rows: Sequence[Any] = (await self._conn.execute(q)).all()
        return {row.id: row for row in rows}


class RegisterRows:
    """The register's rows, for `audit verify` (on the auditor's connection)."""

    def __init__(self, reads: StoredRows) -> None:
        self._conn = reads._conn

    async def current(self) -> AsyncIterator[Row[Any]]:
        """Each record's row with the history row of its version beside it (columns `h_<name>`; `h_id` None when
        that version's history row is missing)."""
        history = record_history.alias("h")
        beside = [history.c[c.name].label(f"h_{c.name}") for c in record_history.c]
        statement = (
            select(records, *beside)
            .outerjoin(
                history,
                (history.c.state == records.c.state)
                & (history.c.reference == records.c.reference)
                & (history.c.version == records.c.version),
            )
            .order_by(records.c.id)
        )
        async for row in await self._conn.stream(statement):
            yield row

    async def history(self, import_id: int | None = None) -> AsyncIterator[Row[Any]]:
        """The versions messages made (`import_id` None), or those one import took, in the order written."""
        where = record_history.c.import_id.is_(None) if import_id is None else record_history.c.import_id == import_id
        async for row in await self._conn.stream(select(record_history).where(where).order_by(record_history.c.id)):
            yield row

    async def hits(self) -> AsyncIterator[Row[Any]]:
        """Every hit, in order."""
        async for row in await self._conn.stream(select(record_hits).order_by(record_hits.c.id)):
            yield row
