"""How a transaction reaches its database: one strategy per engine, chosen once by the `Store`, so no read of the hot
path branches on the dialect.

- SQLite (`SqliteFastPath`): one writer at a time anyway, so nothing is locked; the batch's reads and writes go to
  the driver (`bulk`), where SQLAlchemy's execution layer cost several times what SQLite spends on them.
- PostgreSQL (`PostgresLocked`): the rows a decision reads are locked (`FOR UPDATE`), through SQLAlchemy, which also
  begins the transaction before any asyncpg statement (those would otherwise run outside it); writes then go to
  asyncpg's own `executemany`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import bulk
from gateway.store import register as rq
from gateway.store import statements as q

WriterOf = Callable[[], Awaitable[bulk.Writer]]  # the transaction's writer, made on first use


class Strategy(Protocol):
    """What differs between the engines, for one transaction."""

    locking: bool  # whether rows read for a decision are locked (and a deadline scan skips locked rows)

    async def writer(self, conn: AsyncConnection) -> bulk.Writer:
        """The driver-level writer for the transaction on `conn` (begun first where that matters)."""
        ...

    async def head(self, conn: AsyncConnection, writer: WriterOf) -> Any:
        """The audit chain's head row, locked for the transaction where rows can be locked."""
        ...

    async def earlier(
        self, conn: AsyncConnection, writer: WriterOf, senders: Sequence[str], keys: Sequence[str]
    ) -> Sequence[Any]:
        """Inbound rows whose sender and key are among these (the caller picks the exact pairs)."""
        ...

    async def traces(self, conn: AsyncConnection, writer: WriterOf, ids: Sequence[str]) -> Sequence[Any]:
        """The trace rows with these ids (locked where rows can be locked)."""
        ...

    async def records(self, conn: AsyncConnection, writer: WriterOf, references: Sequence[str]) -> Sequence[Any]:
        """The register rows of these references, any state's (locked where rows can be locked)."""
        ...

    async def candidates(self, conn: AsyncConnection, writer: WriterOf, shapes: Sequence[str]) -> Sequence[Any]:
        """The active register rows with these shape keys."""
        ...

    async def hits(self, conn: AsyncConnection, writer: WriterOf, traces: Sequence[str]) -> Sequence[Any]:
        """(state, reference, trace_id) of the hits these traces made."""
        ...


class SqliteFastPath:
    """SQLite: no locks (one writer), reads and writes through the driver."""

    locking = False

    async def writer(self, conn: AsyncConnection) -> bulk.Writer:
        """sqlite3's own connection, under the aiosqlite one SQLAlchemy holds."""
        raw = (await conn.get_raw_connection()).driver_connection
        return bulk.SqliteWriter(raw._conn, conn.dialect)  # type: ignore[union-attr]

    async def head(self, conn: AsyncConnection, writer: WriterOf) -> Any:
        """The head, read through the driver."""
        return next(iter(await (await writer()).fetch(q.Q_HEAD, id=1)), None)

    async def earlier(
        self, conn: AsyncConnection, writer: WriterOf, senders: Sequence[str], keys: Sequence[str]
    ) -> Sequence[Any]:
        """Through the driver."""
        return await (await writer()).fetch(q.Q_EARLIER, senders=list(senders), keys=list(keys))

    async def traces(self, conn: AsyncConnection, writer: WriterOf, ids: Sequence[str]) -> Sequence[Any]:
        """Through the driver."""
        return await (await writer()).fetch(q.Q_TRACES, ids=list(ids))

    async def records(self, conn: AsyncConnection, writer: WriterOf, references: Sequence[str]) -> Sequence[Any]:
        """Through the driver."""
        return await (await writer()).fetch(rq.Q_BY_REFERENCE, refs=list(references))

    async def candidates(self, conn: AsyncConnection, writer: WriterOf, shapes: Sequence[str]) -> Sequence[Any]:
        """Through the driver."""
        return await (await writer()).fetch(rq.Q_CANDIDATES, shapes=list(shapes), gone="withdrawn")

    async def hits(self, conn: AsyncConnection, writer: WriterOf, traces: Sequence[str]) -> Sequence[Any]:
        """Through the driver."""
        return await (await writer()).fetch(rq.Q_HITS, traces=list(traces))


class PostgresLocked:
    """PostgreSQL: decision reads locked, through SQLAlchemy; writes through asyncpg."""

    locking = True

    async def writer(self, conn: AsyncConnection) -> bulk.Writer:
        """asyncpg's connection, after the transaction is begun by locking the audit head through SQLAlchemy (every
        transaction that writes appends to the chain, so it takes that lock anyway)."""
        raw = (await conn.get_raw_connection()).driver_connection
        await conn.execute(q.HEAD_LOCKED)
        return bulk.PostgresWriter(raw, conn.dialect)

    async def head(self, conn: AsyncConnection, writer: WriterOf) -> Any:
        """The head, locked."""
        return (await conn.execute(q.HEAD_LOCKED)).first()

    async def earlier(
        self, conn: AsyncConnection, writer: WriterOf, senders: Sequence[str], keys: Sequence[str]
    ) -> Sequence[Any]:
        """Through SQLAlchemy, which begins the transaction without locking the audit head for the whole batch."""
        return (await conn.execute(q.EARLIER, {"b_senders": list(senders), "b_keys": list(keys)})).all()

    async def traces(self, conn: AsyncConnection, writer: WriterOf, ids: Sequence[str]) -> Sequence[Any]:
        """Locked, through SQLAlchemy."""
        return (await conn.execute(q.TRACES_LOCKED, {"b_ids": list(ids)})).all()

    async def records(self, conn: AsyncConnection, writer: WriterOf, references: Sequence[str]) -> Sequence[Any]:
        """Locked, so that two gateways change a record one after the other."""
        return (await conn.execute(rq.BY_REFERENCE_LOCKED, {"b_refs": list(references)})).all()

    async def candidates(self, conn: AsyncConnection, writer: WriterOf, shapes: Sequence[str]) -> Sequence[Any]:
        """Through SQLAlchemy, unlocked (a match reads; it changes no record)."""
        return (await conn.execute(rq.CANDIDATES, {"b_shapes": list(shapes)})).all()

    async def hits(self, conn: AsyncConnection, writer: WriterOf, traces: Sequence[str]) -> Sequence[Any]:
        """Through SQLAlchemy (the traces themselves are locked by `traces`)."""
        return (await conn.execute(rq.HITS, {"b_traces": list(traces)})).all()
