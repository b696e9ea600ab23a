"""The batch writes and reads of the hot path, handed to the database driver directly.

A group commit writes a few rows per message into half a dozen tables. Through SQLAlchemy's execution layer each
row's parameters are processed in Python (bind processors, compiled-parameter construction), several times what the
database spends on the rows (docs/performance.md has the figures). Here the same rows go to the driver's own
`executemany`, inside the same SQLAlchemy transaction and on the same connection: reads, schema, the transaction
itself and every other statement stay with SQLAlchemy.

The hot path's reads (the batch's earlier messages and traces, and the audit chain's head) go the same way on
SQLite: through SQLAlchemy each costs several times what SQLite spends answering it. Their rows come back as
`Fetched` rows, each column's value converted by SQLAlchemy's own result processor for its type, so they read
exactly as SQLAlchemy's rows do.

The statements are SQLAlchemy's, compiled once per shape for the dialect: only their execution is the driver's.
Values are given as the dialect stores them: on SQLite, a timestamp in SQLAlchemy's own text format (read back by
SQLAlchemy as before) and a boolean as 0 or 1; on PostgreSQL, asyncpg takes Python values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Boolean, DateTime, Select, Table, bindparam, insert, update
from sqlalchemy.engine import Dialect


class Fetched:
    """A row read through the driver: columns by attribute and in `_mapping`, as on SQLAlchemy's `Row`."""

    __slots__ = ("_mapping",)

    def __init__(self, mapping: dict[str, Any]) -> None:
        self._mapping = mapping

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None


class Query:
    """A read of the hot path: a statement SQLAlchemy compiles for the dialect once, run by the driver.

    `build` makes the statement from bound parameters, given how many values each list parameter holds (an `IN`
    gets one placeholder per value; one compiled form is kept per set of lengths).
    """

    def __init__(self, build: Callable[..., Select[Any]]) -> None:
        self._build = build
        self._compiled: dict[tuple[Any, ...], tuple[str, tuple[tuple[str, int | None], ...], list[Any], list[str]]] = {}

    def compiled(
        self, dialect: Dialect, params: dict[str, Any]
    ) -> tuple[str, tuple[tuple[str, int | None], ...], list[Any], list[str]]:
        """The SQL text, each placeholder's (parameter, index in its list), the columns' result processors and
        names."""
        lengths = tuple(sorted((k, len(v)) for k, v in params.items() if isinstance(v, list | tuple)))
        key = (dialect.name, lengths)
        found = self._compiled.get(key)
        if found is None:
            sizes = dict(lengths)
            binds: dict[str, tuple[str, int | None]] = {}

            def bind(name: str) -> Any:
                if name in sizes:
                    for i in range(sizes[name]):
                        binds[f"{name}_{i}"] = (name, i)
                    return [bindparam(f"{name}_{i}") for i in range(sizes[name])]
                binds[name] = (name, None)
                return bindparam(name)

            statement = self._build(bind)
            compiled = statement.compile(dialect=dialect)
            columns = list(statement.selected_columns)
            processors = [c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns]
            positions = tuple(binds[name] for name in compiled.positiontup or ())
            found = self._compiled[key] = (str(compiled), positions, processors, [c.name for c in columns])
        return found


class Writer:
    """Bulk statements on the transaction's own connection, through the driver's `executemany`."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect

    async def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows (every row has the same keys)."""
        if rows:
            sql, order = _insert_sql(table, list(rows[0]), self._dialect)
            await self._executemany(sql, self._values(table, order, rows))

    async def update(
        self, table: Table, set_: Sequence[str], where: Sequence[str], rows: Sequence[dict[str, Any]]
    ) -> None:
        """`UPDATE table SET set_ WHERE where` (all equalities), once per row."""
        if rows:
            sql, order = _update_sql(table, set_, where, self._dialect)
            await self._executemany(sql, self._values(table, order, rows))

    async def insert_returning_ids(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Insert rows into a table with an integer `id` key; their ids, in the order of `rows`."""
        raise NotImplementedError

    async def fetch(self, query: Query, **params: Any) -> list[Fetched]:
        """The rows `query` reads with these parameters (a list parameter's values fill its `IN`)."""
        sql, positions, processors, names = query.compiled(self._dialect, params)
        values = [params[name] if i is None else params[name][i] for name, i in positions]
        rows = await self._fetch(sql, values)
        out = []
        for row in rows:
            converted = [value if p is None else p(value) for p, value in zip(processors, row, strict=True)]
            out.append(Fetched(dict(zip(names, converted, strict=True))))
        return out

    async def _fetch(self, sql: str, values: list[Any]) -> Sequence[Sequence[Any]]:
        raise NotImplementedError

    def _values(self, table: Table, order: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> list[Sequence[Any]]:
        """Each row's values in placeholder order, as the driver takes them."""
        return [tuple(row[k] for k in order) for row in rows]

    async def _executemany(self, sql: str, values: list[Sequence[Any]]) -> None:
        raise NotImplementedError


@lru_cache(maxsize=1024)
def sqlite_timestamp(value: datetime) -> str:
    """A timestamp as SQLAlchemy's SQLite dialect stores it (UTC, no zone; read back as UTC).

    Remembered: a batch writes the same few moments (its messages' arrival, their deadlines) on many rows."""
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]  # without the zone: "YYYY-MM-DD HH:MM:SS.ffffff"


_ROWS: dict[tuple[str, tuple[str, ...]], Callable[[dict[str, Any]], Sequence[Any]]] = {}


def _sqlite_rows(table: Table, order: tuple[str, ...]) -> Callable[[dict[str, Any]], Sequence[Any]]:
    """A function from a row to its values in placeholder order, timestamps and booleans as the SQLite dialect
    stores them (by the columns' types, so no value is inspected that needs no conversion); built once per shape."""
    found = _ROWS.get((table.name, order))
    if found is not None:
        return found
    get = itemgetter(*order)
    converters = [
        (i, sqlite_timestamp if isinstance(kind, DateTime) else int)
        for i, kind in enumerate(table.c[k].type for k in order)
        if isinstance(kind, DateTime | Boolean)
    ]

    def values(row: dict[str, Any]) -> Sequence[Any]:
        got = get(row)
        out = list(got) if len(order) > 1 else [got]
        for i, convert in converters:
            if out[i] is not None:
                out[i] = convert(out[i])
        return out

    _ROWS[(table.name, order)] = values
    return values


class SqliteWriter(Writer):
    """On the sqlite3 connection itself (it runs inline on the event loop: see `inline`)."""

    def _values(self, table: Table, order: tuple[str, ...], rows: Sequence[dict[str, Any]]) -> list[Sequence[Any]]:
        """Timestamps and booleans as the SQLite dialect stores them."""
        return list(map(_sqlite_rows(table, order), rows))

    async def _executemany(self, sql: str, values: list[Sequence[Any]]) -> None:
        self._connection.executemany(sql, values)

    async def _fetch(self, sql: str, values: list[Any]) -> Sequence[Sequence[Any]]:
        return self._connection.execute(sql, values).fetchall()  # type: ignore[no-any-return]

    async def insert_returning_ids(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Row by row, each id from the insert itself (a sqlite3 insert costs microseconds)."""
        if not rows:
            return []
        sql, order = _insert_sql(table, list(rows[0]), self._dialect)
        cursor = self._connection.cursor()
        ids = []
        for values in self._values(table, order, rows):
            cursor.execute(sql, values)
            ids.append(int(cursor.lastrowid or 0))
        cursor.close()
        return ids


class PostgresWriter(Writer):
    """On the asyncpg connection of the transaction (SQLAlchemy has begun it: see `Transaction.writer`)."""

    async def _executemany(self, sql: str, values: list[Sequence[Any]]) -> None:
        await self._connection.executemany(sql, values)  # pipelined by asyncpg

    async def _fetch(self, sql: str, values: list[Any]) -> Sequence[Sequence[Any]]:
        return await self._connection.fetch(sql, *values)  # type: ignore[no-any-return]

    async def insert_returning_ids(self, table: Table, rows: Sequence[dict[str, Any]]) -> list[int]:
        """Ids drawn from the table's sequence first, in order; then the rows, with them."""
        if not rows:
            return []
        drawn = await self._connection.fetch(
            "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2::int) ORDER BY 1",
            table.name,
            len(rows),
        )
        ids = [int(r[0]) for r in drawn]
        await self.insert(table, [{"id": i, **row} for i, row in zip(ids, rows, strict=True)])
        return ids


_SQL: dict[tuple[Any, ...], tuple[str, tuple[str, ...]]] = {}


def _positional(statement: Any, dialect: Dialect, binds: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    """SQLAlchemy compiles the statement for the dialect: its text, and the row key of each placeholder."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), tuple(binds[name] for name in compiled.positiontup)


def _insert_sql(table: Table, keys: Sequence[str], dialect: Dialect) -> tuple[str, tuple[str, ...]]:
    """`INSERT INTO table (keys) VALUES (...)`, compiled once per shape."""
    cache = ("insert", table.name, tuple(keys), dialect.name)
    found = _SQL.get(cache)
    if found is None:
        binds = {f"v_{k}": k for k in keys}
        statement = insert(table).values({k: bindparam(f"v_{k}") for k in keys})
        found = _SQL[cache] = _positional(statement, dialect, binds)
    return found


def _update_sql(
    table: Table, set_: Sequence[str], where: Sequence[str], dialect: Dialect
) -> tuple[str, tuple[str, ...]]:
    """`UPDATE table SET ... WHERE ...` (equalities), compiled once per shape."""
    cache = ("update", table.name, tuple(set_), tuple(where), dialect.name)
    found = _SQL.get(cache)
    if found is None:
        binds = {**{f"s_{k}": k for k in set_}, **{f"w_{k}": k for k in where}}
        statement = (
            update(table)
            .where(*(table.c[k] == bindparam(f"w_{k}") for k in where))
            .values({k: bindparam(f"s_{k}") for k in set_})
        )
        found = _SQL[cache] = _positional(statement, dialect, binds)
    return found
