"""The database: opened from a URL (SQLite by default, PostgreSQL), its tables made, its transactions taken in
turn, and the outbox read and marked for the relay."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import event, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from gateway.core.chain import Record
from gateway.core.effects import OutboxMessage
from gateway.core.errors import TransientError
from gateway.store import inline
from gateway.store.audit_reads import StoredRows
from gateway.store.rows import outbox_from_row
from gateway.store.strategies import PostgresLocked, SqliteFastPath, Strategy
from gateway.store.tables import add_missing_columns, audit_head, metadata, outbox
from gateway.store.transaction import Transaction
from gateway.store.unit_of_work import SqlUnitOfWork

log = structlog.get_logger("tracegate.store")


def _sqlite_pragmas(autocheckpoint: int) -> Callable[[Any, Any], None]:
    """WAL for concurrent readers, and each commit synced to disk before it returns (`synchronous=FULL`): a message
    is acknowledged to the broker only after its commit, so not even a power cut may lose an acknowledged
    message; group commit shares one sync among a batch. A 64 MB page cache; the write-ahead log checkpointed
    every `autocheckpoint` pages by the commit that crosses it (0: never by a commit, see `Store`); a busy
    timeout so a short lock waits."""

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
        cursor.execute(f"PRAGMA busy_timeout={inline.BUSY_TIMEOUT_MS}")
        cursor.close()

    return pragmas


def _checkpoint(path: str, mode: str) -> None:
    """Copy the write-ahead log into the database file, on a connection of its own (run on a thread)."""
    connection = sqlite3.connect(path, timeout=inline.BUSY_TIMEOUT_MS / 1000)
    try:
        connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
    finally:
        connection.close()


class Store:
    """The database: opened from a URL, tables created on `start`."""

    def __init__(self, url: str, *, schema: str | None = None, checkpoint_every: float | None = None) -> None:
        """`checkpoint_every` (SQLite, `serve`): checkpoint the write-ahead log on a thread every so many seconds,
        and never in a commit: a commit that crosses the automatic checkpoint copies the log itself, and holds its
        whole batch meanwhile (docs/performance.md)."""
        connect_args: dict[str, Any] = {}
        if url.startswith("sqlite+aiosqlite"):
            connect_args["async_creator_fn"] = inline.connect
        if schema and url.startswith("postgresql"):
            connect_args["server_settings"] = {"search_path": schema}
        self.url = url
        self.schema = schema
        # A SQLite file does not drop connections: no ping before each transaction (it costs a thread hop).
        self.engine: AsyncEngine = create_async_engine(
            url, connect_args=connect_args, pool_pre_ping=not url.startswith("sqlite")
        )
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.strategy: Strategy = SqliteFastPath() if self.is_sqlite else PostgresLocked()
        self.checkpoint_every = checkpoint_every if self.is_sqlite else None
        self._checkpoints: asyncio.Task[None] | None = None
        if self.is_sqlite:
            autocheckpoint = 0 if self.checkpoint_every else 8000
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas(autocheckpoint))
        self._write_lock = asyncio.Lock()  # one writer at a time (SQLite has one anyway; see `unit_of_work`)
        self._writes = 0  # write transactions committed
        self._handing: set[int] = set()  # outbox rows of the commit in progress: its caller's to hand to the relay
        self._tables: set[str] = set()  # routing table versions known to be kept

    async def start(self) -> None:
        """Create missing tables (and the schema, on PostgreSQL)."""
        async with self.engine.begin() as conn:
            if self.schema and not self.is_sqlite:
                await conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            await conn.run_sync(metadata.create_all)
            await conn.run_sync(add_missing_columns)
        if self.checkpoint_every and self._checkpoints is None:
            self._checkpoints = asyncio.create_task(self._checkpoint_now_and_then(), name="wal-checkpoints")

    @property
    def _sqlite_path(self) -> str:
        """The SQLite file."""
        return str(self.engine.url.database)

    async def _checkpoint_now_and_then(self) -> None:
        """Every `checkpoint_every` seconds in which something was committed, a passive checkpoint on a thread: it
        copies what no reader still needs and waits for nobody, so commits go on meanwhile."""
        loop = asyncio.get_running_loop()
        seen = -1
        while True:
            await asyncio.sleep(self.checkpoint_every or 1.0)
            if self._writes == seen:
                continue
            seen = self._writes
            try:
                await loop.run_in_executor(None, _checkpoint, self._sqlite_path, "PASSIVE")
            except sqlite3.Error as err:
                log.warning("checkpoint postponed", error=str(err))

    async def ping(self) -> None:
        """Raise unless the database can take a write now (a write that changes nothing: reads alone can pass
        while another process holds SQLite's write lock)."""
        async with self.engine.begin() as conn:
            await conn.execute(update(audit_head).where(audit_head.c.id == -1).values(seq=0))

    async def close(self) -> None:
        """Release every connection (after a last checkpoint, if this store runs them)."""
        if self._checkpoints is not None:
            self._checkpoints.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoints
            self._checkpoints = None
            await self.engine.dispose()
            with contextlib.suppress(sqlite3.Error):
                await asyncio.get_running_loop().run_in_executor(None, _checkpoint, self._sqlite_path, "TRUNCATE")
            return
        await self.engine.dispose()

    @staticmethod
    @asynccontextmanager
    async def _faults() -> AsyncIterator[None]:
        """A database fault becomes `TransientError`: the caller waits and tries again."""
        try:
            yield
        except (OperationalError, DBAPIError, OSError, ConnectionError) as err:
            raise TransientError(f"database unavailable: {type(err).__name__}") from err

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[SqlUnitOfWork]:
        """A write transaction, committed only by the unit of work's `commit`; a database fault becomes
        `TransientError` so the message is retried. Transactions take turns (one writer at a time): on SQLite the
        database has one writer anyway, and on PostgreSQL a batch's rows are locked by the one that reads them.

        The outbox rows a commit wrote are not `unsent` to a poll while the commit returns: they are its
        caller's to hand to the relay, which it does before the event loop turns again."""
        async with self._write_lock:
            try:
                async with self.engine.connect() as conn:
                    # Begun through SQLAlchemy, so its commit reaches the driver even when every statement of the
                    # batch went to the driver directly (see `bulk`).
                    await conn.begin()
                    uow = SqlUnitOfWork(Transaction(conn, self.strategy), self)
                    yield uow
            except (OperationalError, DBAPIError, OSError, ConnectionError) as err:
                raise TransientError(f"database unavailable: {type(err).__name__}") from err
            finally:
                self._handing = set()
        if uow.committed:
            self._writes += 1
            if uow.table_version is not None:
                self._tables.add(uow.table_version)

    async def commit_now(self, uow: SqlUnitOfWork) -> None:
        """Commit the unit of work's transaction (its rows are the caller's to hand over, see `unit_of_work`)."""
        self._handing = {m.id for m in uow.tx.queued}
        await uow.tx.conn.commit()
        uow.committed = True

    def knows_table(self, version: str) -> bool:
        """Whether this routing table version is known to be kept already."""
        return version in self._tables

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction for the scheduler, checkpoints and tools: what it records is written, and its audit
        records chained, when the block ends; the outbox rows it wrote are in `queued` after."""
        async with self.unit_of_work() as uow:
            yield uow.tx
            await uow.commit(())

    async def unsent(self, limit: int = 200) -> list[OutboxMessage]:
        """Outbox rows not yet marked sent, oldest first (but those of a commit still returning: see
        `unit_of_work`). Which of them the relay already holds, it knows itself."""
        q = select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(limit)
        async with self._faults(), self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        handing = self._handing
        return [m for m in map(outbox_from_row, rows) if m.id not in handing]

    async def mark_sent(self, marks: Mapping[int, datetime]) -> None:
        """Record that the broker confirmed these rows (id: when), in one statement of a transaction of its own,
        through the driver (a second's confirms are hundreds of rows: SQLAlchemy's execution layer would process each
        row's parameters in Python)."""
        if not marks:
            return
        async with self.unit_of_work() as uow:
            writer = await uow.tx.writer()
            await writer.update(outbox, ("sent_at",), ("id",), [{"sent_at": at, "id": i} for i, at in marks.items()])
            await uow.commit(())

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[StoredRows]:
        """One read transaction over everything read through it (the auditor's view)."""
        async with self.engine.connect() as conn:
            if self.is_sqlite:
                await conn.exec_driver_sql("BEGIN")  # the driver begins only before a write: a read transaction by hand
            else:
                await conn.execution_options(isolation_level="REPEATABLE READ")
            try:
                yield StoredRows(conn)
            finally:
                await conn.rollback()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[StoredRows]:
        """A short read on a connection of its own."""
        async with self.engine.connect() as conn:
            yield StoredRows(conn)

    async def chain_records(self, *, upto: int | None = None, batch: int = 5000) -> AsyncIterator[Record]:
        """The audit chain in order (up to record `upto`), read in batches, each in a short read of its own."""
        after = 0
        while upto is None or after < upto:
            async with self.reading() as reads:
                records = await reads.records(after, batch, upto=upto)
            if not records:
                return
            for record in records:
                yield record
            after = records[-1].seq

    @property
    def where(self) -> str:
        """The database, for messages (without its password)."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return str(self.engine.dialect.name)

    @property
    def sqlite_file(self) -> str | None:
        """The SQLite file, if this store is one (None for memory or PostgreSQL)."""
        database = self.engine.url.database
        return database if self.is_sqlite and database and database != ":memory:" else None

    async def fetch(self, query: Any) -> list[Row[Any]]:
        """Run a read-only query (administration and tests)."""
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())
