"""The embedded SQLite store: durable commits synced off the event loop, and a held lock that fails fast."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from gateway.core.errors import TransientError
from gateway.store import Store
from gateway.store.inline import BUSY_TIMEOUT_MS


async def test_commits_are_synced_and_logged_ahead(tmp_path: Path) -> None:
    """SQLite runs in WAL mode with every commit synced to disk (synchronous=FULL)."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await store.start()
    try:
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
    finally:
        await store.close()


async def test_statements_run_on_the_loop_thread_and_the_commit_beside_it(tmp_path: Path) -> None:
    """Statements run on the event loop's thread; only the commit goes to a thread of its own."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")
    await store.start()
    seen: list[tuple[int, str]] = []

    def trace(adapted: Any, _record: object) -> None:
        sqlite_conn: sqlite3.Connection = adapted.driver_connection._conn
        sqlite_conn.set_trace_callback(lambda sql: seen.append((threading.get_ident(), sql.split()[0].upper())))

    event.listen(store.engine.sync_engine, "connect", trace)
    await store.engine.dispose()  # new connections get the trace
    try:
        for _ in range(3):
            async with store.transaction() as tx:
                await tx.remember_table(f"sha256:{_}", "[states.ZA]", datetime.now(UTC))
        loop_thread = threading.get_ident()
        statements = [kind for ident, kind in seen if ident == loop_thread]
        elsewhere = [kind for ident, kind in seen if ident != loop_thread]
        assert "INSERT" in statements and "SELECT" in statements
        assert elsewhere.count("COMMIT") == 3  # the sync to disk never stalls the event loop
        assert "COMMIT" not in statements and set(elsewhere) == {"COMMIT"}
    finally:
        await store.close()


async def test_a_write_lock_held_by_another_process_fails_fast_as_transient(tmp_path: Path) -> None:
    """Another process holding SQLite's write lock makes a write fail within the busy timeout, as a transient fault."""
    path = tmp_path / "g.db"
    store = Store(f"sqlite+aiosqlite:///{path}")
    await store.start()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process's write transaction
    try:
        started = time.perf_counter()
        with pytest.raises(TransientError, match="database unavailable"):
            async with store.transaction() as tx:
                await tx.remember_table("sha256:test", "[states.ZA]", datetime.now(UTC))
        assert time.perf_counter() - started < BUSY_TIMEOUT_MS / 1000 + 2
    finally:
        other.execute("ROLLBACK")
        other.close()
        await store.ping()  # free again
        await store.close()


async def test_serve_checkpoints_the_log_on_a_thread_and_never_in_a_commit(tmp_path: Path) -> None:
    """With `checkpoint_every`, the write-ahead log is checkpointed beside the commits, never by one."""
    path = tmp_path / "g.db"
    store = Store(f"sqlite+aiosqlite:///{path}", checkpoint_every=0.05)  # as `serve` opens it (every second)
    await store.start()
    try:
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 0
        empty = path.stat().st_size
        for i in range(20):
            async with store.transaction() as tx:
                await tx.remember_table(f"sha256:{i}", "x" * 20_000, datetime.now(UTC))
        # Only a checkpoint moves pages from the log into the database file: it grows without any commit's help.
        for _ in range(100):
            if path.stat().st_size > empty + 300_000:
                break
            await asyncio.sleep(0.05)
        assert path.stat().st_size > empty + 300_000
    finally:
        await store.close()
    wal = path.with_name(path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # the last checkpoint, at close, empties the log


async def test_other_stores_leave_checkpoints_to_sqlite(tmp_path: Path) -> None:
    """Without `checkpoint_every`, SQLite checkpoints the log itself."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'g.db'}")  # the command-line tools' store
    await store.start()
    try:
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA wal_autocheckpoint"))).scalar() == 8000
    finally:
        await store.close()
