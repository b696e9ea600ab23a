"""SQLite run on the event loop's own thread, behind aiosqlite's interface.

aiosqlite sends every call to a worker thread and back. A statement of ours takes microseconds in SQLite, but
each round trip waits for the GIL and for a turn of a busy event loop: under load, milliseconds per statement,
and a transaction makes a dozen. Run inline, a batch's statements cost the loop little.

The commit is the exception: it waits for the disk (under a millisecond usually, tens of milliseconds now and
then, longer when it checkpoints the write-ahead log), so it runs on a thread and the loop goes on meanwhile. The
one wait that could be long, another process holding SQLite's write lock, is bounded by the connection's busy
timeout (`BUSY_TIMEOUT_MS`); past it the write fails as a transient fault and the message is retried.

This relies on aiosqlite's internals (`_execute`, `_running`, `_connection`, `_connector`, and the `_conn` the
bulk writer reaches through), so `pyproject.toml` pins aiosqlite below its next minor version; the SQLite store
tests (tests/integration/test_store_sqlite.py) are what a new version must pass before the bound moves.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite

BUSY_TIMEOUT_MS = 1000


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose calls run where they are awaited, with no worker thread."""

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run the call now."""
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)

    async def commit(self) -> None:
        """Commit on a thread: the sync to disk must not stall the event loop."""
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        await asyncio.get_running_loop().run_in_executor(None, self._connection.commit)

    async def _connect(self) -> InlineConnection:
        """Open the sqlite3 connection now."""
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()

    def stop(self) -> None:
        """Close the sqlite3 connection (there is no thread to stop)."""
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        """Close the sqlite3 connection."""
        self.stop()


def connect(database: str, **kwargs: Any) -> InlineConnection:
    """What SQLAlchemy's aiosqlite dialect calls to open a connection (`async_creator_fn`)."""
    kwargs.setdefault("check_same_thread", False)
    return InlineConnection(partial(sqlite3.connect, database, **kwargs), 64)
