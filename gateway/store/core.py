"""The durable store (SQLAlchemy Core): SQLite by default, PostgreSQL by URL; one transaction per effect."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

import structlog
from sqlalchemy import and_, bindparam, event, insert, literal, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gateway import audit as audit_rules
from gateway.deadlines import PlannedNotice
from gateway.errors import TransientError
from gateway.model import (
    Acknowledged,
    Acknowledgement,
    Confidentiality,
    Deadlines,
    Restrictions,
    Rule,
    Trace,
    TraceStatus,
)
from gateway.store import bulk, inline
from gateway.store.tables import (
    add_missing_columns,
    audit,
    audit_head,
    deadlines,
    inbound,
    metadata,
    outbox,
    routing_tables,
    traces,
)

log = structlog.get_logger("tracegate.store")


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
    """Everything one decided message changes; a transaction writes the effects of many messages in bulk."""

    record: InboundRecord
    trace: Trace | None = None
    new_trace: bool = False
    settle: frozenset[str] = frozenset()
    plan: Sequence[PlannedNotice] = ()
    outgoing: Sequence[OutboxMessage] = field(default_factory=tuple)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def trace_from_row(row: Any) -> Trace:
    """A `Trace` from its row (SQLAlchemy's, or one the driver read: see `bulk.Fetched`)."""
    m = row._mapping
    restrictions = None
    if m["restrictions"]:
        raw = json.loads(m["restrictions"])
        restrictions = Restrictions(codes=tuple(raw["codes"]), text=raw.get("text"))
    acknowledged = None
    if m["acknowledgement"]:
        acknowledged = Acknowledged(
            aware(m["acknowledged_at"]),  # type: ignore[arg-type]
            m["acknowledged_by"],
            Acknowledgement(m["acknowledgement"]),
        )
    return Trace(
        trace_id=m["trace_id"],
        requester=m["requester"],
        party=m["party"],
        destination=m["destination"],
        rule=Rule(m["rule"]),
        table_version=m["table_version"],
        status=TraceStatus(m["status"]),
        deadlines=Deadlines(aware(m["acknowledge_by"]), aware(m["respond_by"])),  # type: ignore[arg-type]
        opened_at=aware(m["opened_at"]),  # type: ignore[arg-type]
        updated_at=aware(m["updated_at"]),  # type: ignore[arg-type]
        confidentiality=Confidentiality(m["confidentiality_guaranteed"], m["confidentiality_reason"]),
        restrictions=restrictions,
        delay_reason=m["delay_reason"],
        delay_expected_by=date.fromisoformat(m["delay_expected_by"]) if m["delay_expected_by"] else None,
        current_request_id=m["current_request_id"],
        acknowledged=acknowledged,
    )


def _trace_values(trace: Trace) -> dict[str, Any]:
    """Column values of a `Trace`."""
    r = trace.restrictions
    return {
        "trace_id": trace.trace_id,
        "requester": trace.requester,
        "party": trace.party,
        "destination": trace.destination,
        "rule": trace.rule.value,
        "table_version": trace.table_version,
        "status": trace.status.value,
        "acknowledge_by": trace.deadlines.acknowledge_by,
        "respond_by": trace.deadlines.respond_by,
        "opened_at": trace.opened_at,
        "updated_at": trace.updated_at,
        "confidentiality_guaranteed": trace.confidentiality.guaranteed,
        "confidentiality_reason": trace.confidentiality.reason,
        "restrictions": json.dumps({"codes": list(r.codes), "text": r.text}) if r else None,
        "delay_reason": trace.delay_reason,
        "delay_expected_by": trace.delay_expected_by.isoformat() if trace.delay_expected_by else None,
        "current_request_id": trace.current_request_id,
        "acknowledged_at": trace.acknowledged.at if trace.acknowledged else None,
        "acknowledged_by": trace.acknowledged.message_id if trace.acknowledged else None,
        "acknowledgement": trace.acknowledged.how.value if trace.acknowledged else None,
    }


def _message_in(record: InboundRecord, inbound_id: int) -> audit_rules.Entry:
    """The audit entry of a received message and the decision on it."""
    decision = {k: v for k, v in record.__dict__.items() if k not in {"body", "sha256", "received_at"}}
    return audit_rules.Entry(
        audit_rules.RecordType.MESSAGE_IN,
        record.received_at,
        {"inbound_id": inbound_id, **decision},
        record.trace_id,
        record.sha256,
    )


# Every column of the trace's row but its key (the record's trace) and `updated_at` (the record's time): `audit
# verify` holds the row to its last record column by column (`current_request_id` marks a record holding them all).
_TRACE_STATE = (
    "status",
    "requester",
    "party",
    "destination",
    "rule",
    "table_version",
    "acknowledge_by",
    "respond_by",
    "restrictions",
    "delay_reason",
    "opened_at",
    "confidentiality_guaranteed",
    "confidentiality_reason",
    "delay_expected_by",
    "current_request_id",
    "acknowledged_at",
    "acknowledged_by",
    "acknowledgement",
)


def _trace_entry(e: Effects, values: dict[str, Any]) -> audit_rules.Entry:
    """The audit entry of a trace's new state, with the deadline notices the message settled and planned (so `audit
    verify` can hold every deadline row to the records: which notices, due and fired when, cancelled when)."""
    trace = e.trace
    assert trace is not None
    state: dict[str, Any] = {"new": e.new_trace, **{k: values[k] for k in _TRACE_STATE}}
    if e.settle:
        state["settled"] = {"kinds": sorted(e.settle), "at": e.record.received_at}
    if e.plan:
        state["notices"] = [[p.kind.value, p.fire_at, p.due_at] for p in e.plan]
    return audit_rules.Entry(audit_rules.RecordType.TRACE, trace.updated_at, state, trace.trace_id)


def _message_out(m: OutboxMessage, outbox_id: int, inbound_id: int | None, now: datetime) -> audit_rules.Entry:
    """The audit entry of a gateway message queued for sending."""
    return audit_rules.Entry(
        audit_rules.RecordType.MESSAGE_OUT,
        now,
        {
            "outbox_id": outbox_id,
            "message_id": m.message_id,
            "recipient": m.recipient,
            "kind": m.kind,
            "inbound_id": inbound_id,
            "queue": m.queue,
        },
        m.trace_id,
        hashlib.sha256(m.body).hexdigest(),
    )


def _outbox_row(m: OutboxMessage, inbound_id: int | None, now: datetime) -> dict[str, Any]:
    """Column values of an outbox row."""
    return {
        "message_id": m.message_id,
        "recipient": m.recipient,
        "queue": m.queue,
        "kind": m.kind,
        "trace_id": m.trace_id,
        "inbound_id": inbound_id,
        "body": m.body,
        "created_at": now,
    }


_TRACE_COLUMNS = tuple(c.name for c in traces.c if c.name != "trace_id")  # what a trace's update sets
# Statements built once: building one per call costs more CPU than SQLite spends running it.
_HEAD = select(audit_head).where(audit_head.c.id == 1)
_HEAD_LOCKED = _HEAD.with_for_update()
# Senders and keys as two lists (the exact pairs are picked after): a row-value IN, `(sender, key) IN (...)`, is
# not served by the unique index on SQLite, which then scans the whole inbound table for every batch.
_EARLIER = select(inbound).where(
    inbound.c.sender.in_(bindparam("b_senders", expanding=True)),
    inbound.c.dedup_key.in_(bindparam("b_keys", expanding=True)),
)
_TRACES = select(traces).where(traces.c.trace_id.in_(bindparam("b_ids", expanding=True)))
_TRACES_LOCKED = _TRACES.with_for_update()
_ONE_TRACE = select(traces).where(traces.c.trace_id == bindparam("b_id"))
_ONE_TRACE_LOCKED = _ONE_TRACE.with_for_update()
_ONE_EARLIER = select(inbound).where(
    inbound.c.sender == bindparam("b_sender"), inbound.c.dedup_key == bindparam("b_key")
)
_SETTLE: dict[frozenset[str], Any] = {}
# The same reads for SQLite's driver (see `bulk.Query`): a list parameter's values fill its IN.
_Q_EARLIER = bulk.Query(
    lambda bind: select(inbound).where(inbound.c.sender.in_(bind("senders")), inbound.c.dedup_key.in_(bind("keys")))
)
_Q_TRACES = bulk.Query(lambda bind: select(traces).where(traces.c.trace_id.in_(bind("ids"))))
_Q_HEAD = bulk.Query(lambda bind: select(audit_head).where(audit_head.c.id == bind("id")))


def _settle_statement(kinds: frozenset[str]) -> Any:
    """Cancel a trace's pending notices of `kinds` (one statement per set of kinds, built once)."""
    statement = _SETTLE.get(kinds)
    if statement is None:
        statement = _SETTLE[kinds] = (
            update(deadlines)
            .where(
                deadlines.c.trace_id == bindparam("b_trace_id"),
                deadlines.c.status == "pending",
                or_(*(deadlines.c.kind == literal(str(k)) for k in sorted(kinds))),
            )
            .values(status="cancelled", settled_at=bindparam("b_at"))
        )
    return statement


class Transaction:
    """One unit of work: reads and writes that commit together or not at all.

    Decided messages are `record`ed and written in bulk when the transaction flushes (before any read that
    could see them, and at commit): a batch of messages costs a handful of statements, not a handful each.
    Traces read or written in the transaction are kept, so a later message of the batch sees the earlier ones.
    """

    def __init__(self, conn: AsyncConnection, locking: bool) -> None:
        self._conn = conn
        self._locking = locking
        self._audit: list[audit_rules.Entry] = []
        self._pending: list[Effects] = []
        self._pending_keys: set[tuple[str, str]] = set()
        self._known: dict[tuple[str, str], Any] = {}  # a Row, or a `bulk.Fetched` row; None: no earlier message
        self._traces: dict[str, Trace | None] = {}
        self.queued: list[OutboxMessage] = []  # outbox rows written here, with their ids: the relay's after commit
        self.before_flush: Callable[[], Awaitable[None]] | None = None  # completes recorded effects (signing)
        self._writer: bulk.Writer | None = None

    async def writer(self) -> bulk.Writer:
        """The driver-level writer for this transaction's bulk writes (see `bulk`), on its own connection.

        On PostgreSQL the transaction is begun first, by locking the audit head through SQLAlchemy (every
        transaction that writes appends to the chain, so it takes that lock anyway): asyncpg statements sent
        before SQLAlchemy's first one would run outside the transaction.
        """
        if self._writer is None:
            raw = (await self._conn.get_raw_connection()).driver_connection
            if self._locking:
                await self._conn.execute(_HEAD_LOCKED)
                self._writer = bulk.PostgresWriter(raw, self._conn.dialect)
            else:
                self._writer = bulk.SqliteWriter(raw._conn, self._conn.dialect)  # type: ignore[union-attr]
        return self._writer

    def audit(self, entry: audit_rules.Entry) -> None:
        """Add an audit record; it joins the chain when this transaction commits."""
        self._audit.append(entry)

    async def chain_head(self) -> tuple[int, str, str] | None:
        """(seq, hash, type) of the chain's last record, locked for this transaction; None for an empty chain."""
        await self.flush()
        q = select(audit_head).where(audit_head.c.id == 1)
        if self._locking:
            q = q.with_for_update()
        head = (await self._conn.execute(q)).first()
        if head is None:
            return None
        kind = (await self._conn.execute(select(audit.c.type).where(audit.c.seq == head.seq))).scalar_one_or_none()
        return head.seq, head.hash, kind or ""

    async def flush_audit(self) -> audit_rules.Record | None:
        """Chain this transaction's audit records after the head, under the head's lock; returns the last one."""
        await self.flush()
        if not self._audit:
            return None
        if self._locking:
            head: Any = (await self._conn.execute(_HEAD_LOCKED)).first()
        else:
            head = next(iter(await (await self.writer()).fetch(_Q_HEAD, id=1)), None)
        seq, prev = (head.seq, head.hash) if head else (0, audit_rules.GENESIS)
        records = audit_rules.chain(self._audit, seq, prev)
        writer = await self.writer()
        await writer.insert(audit, [r.__dict__ for r in records])
        last = records[-1]
        if head is None:
            await self._conn.execute(insert(audit_head).values(id=1, seq=last.seq, hash=last.hash))
        else:
            await writer.update(audit_head, ("seq", "hash"), ("id",), [{"seq": last.seq, "hash": last.hash, "id": 1}])
        self._audit.clear()
        return last

    async def prefetch(self, keys: Sequence[tuple[str, str]], trace_ids: Iterable[str]) -> None:
        """Read, in two statements, the earlier messages and the traces a batch of messages will look up."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self._known and k not in self._pending_keys]
        # On SQLite through the driver (see `bulk`); on PostgreSQL through SQLAlchemy, which begins the transaction
        # (the driver's statements must not come first) without locking the audit head for the whole batch.
        if wanted:
            senders, dedup_keys = sorted({s for s, _ in wanted}), sorted({k for _, k in wanted})
            if self._locking:
                earlier: Sequence[Any] = (
                    await self._conn.execute(_EARLIER, {"b_senders": senders, "b_keys": dedup_keys})
                ).all()
            else:
                earlier = await (await self.writer()).fetch(_Q_EARLIER, senders=senders, keys=dedup_keys)
            found = {(r.sender, r.dedup_key): r for r in earlier}
            for k in wanted:
                self._known[k] = found.get(k)
        ids = [t for t in dict.fromkeys(trace_ids) if t and t not in self._traces]
        if ids:
            if self._locking:
                read: Sequence[Any] = (await self._conn.execute(_TRACES_LOCKED, {"b_ids": ids})).all()
            else:
                read = await (await self.writer()).fetch(_Q_TRACES, ids=ids)
            rows = {r.trace_id: r for r in read}
            for t in ids:
                row = rows.get(t)
                self._traces[t] = trace_from_row(row) if row is not None else None

    async def find_inbound(self, sender: str, dedup_key: str) -> Any:
        """The earlier message with this (sender, key), if any."""
        key = (sender, dedup_key)
        if key in self._pending_keys:
            await self.flush()
        elif key in self._known:
            return self._known[key]
        return (await self._conn.execute(_ONE_EARLIER, {"b_sender": sender, "b_key": dedup_key})).first()

    async def get_trace(self, trace_id: str) -> Trace | None:
        """A trace, as this transaction has it (locked where the database can lock rows)."""
        if trace_id in self._traces:
            return self._traces[trace_id]
        statement = _ONE_TRACE_LOCKED if self._locking else _ONE_TRACE
        row = (await self._conn.execute(statement, {"b_id": trace_id})).first()
        trace = trace_from_row(row) if row else None
        self._traces[trace_id] = trace
        return trace

    def record(self, effects: Effects) -> None:
        """Queue one decided message's effects; they are written at the next flush, in the order recorded."""
        self._pending.append(effects)
        self._pending_keys.add((effects.record.sender, effects.record.dedup_key))
        if effects.trace is not None:
            self._traces[effects.trace.trace_id] = effects.trace

    async def flush(self) -> None:
        """Write every recorded effect: each table in one statement, the audit entries in the recorded order."""
        if not self._pending:
            return
        if self.before_flush is not None:
            await self.before_flush()
        effects, self._pending = self._pending, []
        for key in self._pending_keys:
            self._known.pop(key, None)
        self._pending_keys.clear()
        writer = await self.writer()
        inbound_ids = await writer.insert_returning_ids(inbound, [e.record.__dict__ for e in effects])
        values = [_trace_values(e.trace) if e.trace is not None else {} for e in effects]
        pairs = list(zip(effects, values, strict=True))
        await writer.insert(traces, [v for e, v in pairs if e.trace is not None and e.new_trace])
        changed = [v for e, v in pairs if e.trace is not None and not e.new_trace]
        await writer.update(traces, _TRACE_COLUMNS, ("trace_id",), changed)
        await self._write_notices(effects, writer)
        rows = [
            _outbox_row(m, i, e.record.received_at)
            for e, i in zip(effects, inbound_ids, strict=True)
            for m in e.outgoing
        ]
        outbox_ids = iter(await writer.insert_returning_ids(outbox, rows))
        for e, inbound_id, v in zip(effects, inbound_ids, values, strict=True):
            self.audit(_message_in(e.record, inbound_id))
            if e.trace is not None:
                self.audit(_trace_entry(e, v))
            for m in e.outgoing:
                outbox_id = next(outbox_ids)
                self.audit(_message_out(m, outbox_id, inbound_id, e.record.received_at))
                self.queued.append(replace(m, id=outbox_id, inbound_id=inbound_id))

    async def _write_notices(self, effects: Sequence[Effects], writer: bulk.Writer) -> None:
        """Settle and plan deadline notices as if message by message: a later message settles what an earlier
        one of the batch planned (in memory), and what was pending before the batch (one statement per kind set)."""
        planned: list[dict[str, Any]] = []
        settled: dict[frozenset[str], list[dict[str, Any]]] = {}
        for e in effects:
            if e.trace is None:
                continue
            trace_id, now = e.trace.trace_id, e.record.received_at
            if e.settle:
                for row in planned:
                    if row["trace_id"] == trace_id and row["status"] == "pending" and row["kind"] in e.settle:
                        row.update(status="cancelled", settled_at=now)
                settled.setdefault(e.settle, []).append({"b_trace_id": trace_id, "b_at": now})
            planned.extend(
                {
                    "trace_id": trace_id,
                    "kind": p.kind.value,
                    "fire_at": p.fire_at,
                    "due_at": p.due_at,
                    "status": "pending",
                    "settled_at": None,
                }
                for p in e.plan
            )
        for kinds, params in settled.items():
            await self._conn.execute(_settle_statement(kinds), params)
        await writer.insert(deadlines, planned)

    async def add_outbox(self, messages: Sequence[OutboxMessage], *, inbound_id: int | None, now: datetime) -> None:
        """Queue signed messages for the relay, now."""
        if not messages:
            return
        await self.flush()
        rows = [_outbox_row(m, inbound_id, now) for m in messages]
        ids = await (await self.writer()).insert_returning_ids(outbox, rows)
        for outbox_id, m in zip(ids, messages, strict=True):
            self.audit(_message_out(m, int(outbox_id), inbound_id, now))
            self.queued.append(replace(m, id=int(outbox_id), inbound_id=inbound_id))

    async def answers_to(self, inbound_id: int, recipient: str) -> list[OutboxMessage]:
        """What the gateway answered the sender of an earlier message (its first answer)."""
        await self.flush()
        q = (
            select(outbox)
            .where(outbox.c.inbound_id == inbound_id, outbox.c.recipient == recipient)
            .order_by(outbox.c.id)
        )
        rows = (await self._conn.execute(q)).all()
        return [_outbox_from_row(r) for r in rows]

    async def remember_table(self, version: str, content: str, now: datetime) -> None:
        """Keep a routing table version the first time it is used."""
        await self.flush()
        q = select(routing_tables.c.version).where(routing_tables.c.version == version)
        if (await self._conn.execute(q)).first() is None:
            await self._conn.execute(insert(routing_tables).values(version=version, content=content, first_used_at=now))
            self.audit(
                audit_rules.Entry(
                    audit_rules.RecordType.ROUTING_TABLE,
                    now,
                    {"version": version},
                    None,
                    hashlib.sha256(content.encode()).hexdigest(),
                )
            )

    async def due_notices(self, now: datetime, limit: int) -> list[Row[Any]]:
        """Pending notices whose time has come, oldest first (locked, skipping rows another gateway holds)."""
        await self.flush()
        q = (
            select(deadlines)
            # A literal, not a bound parameter: the planner must see it matches the partial index's predicate.
            .where(deadlines.c.status == literal("pending", literal_execute=True), deadlines.c.fire_at <= now)
            .order_by(deadlines.c.fire_at, deadlines.c.id)
            .limit(limit)
        )
        if self._locking:
            q = q.with_for_update(skip_locked=True)
        return list((await self._conn.execute(q)).all())

    async def mark_fired(self, rows: Sequence[Row[Any]], now: datetime) -> None:
        """Record that these notices were queued for sending."""
        await self.flush()
        ids = [r.id for r in rows]
        for r in rows:
            self.audit(
                audit_rules.Entry(
                    audit_rules.RecordType.DEADLINE,
                    now,
                    {"deadline_id": r.id, "kind": r.kind, "due_at": aware(r.due_at)},
                    r.trace_id,
                )
            )
        if ids:
            await self._conn.execute(
                update(deadlines).where(deadlines.c.id.in_(list(ids))).values(status="fired", settled_at=now)
            )

    async def traces_of(
        self,
        state: str,
        *,
        role: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        trace_id: str | None = None,
        after: Trace | None = None,
        limit: int | None = None,
    ) -> list[Trace]:
        """A state's own traces (as requester or as requested party), filtered, oldest first: those after `after`
        in that order, at most `limit`."""
        await self.flush()
        return await select_traces(
            self._conn, state=state, role=role, status=status, since=since, trace_id=trace_id, after=after, limit=limit
        )


async def select_traces(
    conn: AsyncConnection,
    *,
    state: str | None = None,
    role: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    trace_id: str | None = None,
    after: Trace | None = None,
    limit: int | None = None,
) -> list[Trace]:
    """Traces matching the filters, by opening time then TraceId; `role` is seen from `state` (outgoing: it asked;
    incoming: it was asked); `after`: only those that come after it in that order; at most `limit`."""
    q = select(traces).order_by(traces.c.opened_at, traces.c.trace_id)
    if state is not None:
        if role == "outgoing":
            q = q.where(traces.c.requester == state)
        elif role == "incoming":
            q = q.where(traces.c.party == state)
        else:
            q = q.where(or_(traces.c.requester == state, traces.c.party == state))
    if status:
        q = q.where(traces.c.status == status)
    if since is not None:
        q = q.where(traces.c.updated_at >= since)
    if trace_id is not None:
        q = q.where(traces.c.trace_id == trace_id)
    if after is not None:
        q = q.where(
            or_(
                traces.c.opened_at > after.opened_at,
                and_(traces.c.opened_at == after.opened_at, traces.c.trace_id > after.trace_id),
            )
        )
    if limit is not None:
        q = q.limit(limit)
    return [trace_from_row(r) for r in (await conn.execute(q)).all()]


def _outbox_from_row(row: Row[Any]) -> OutboxMessage:
    """An `OutboxMessage` from its row."""
    m = row._mapping
    return OutboxMessage(
        id=m["id"],
        message_id=m["message_id"],
        recipient=m["recipient"],
        queue=m["queue"],
        kind=m["kind"],
        trace_id=m["trace_id"],
        body=m["body"],
        inbound_id=m["inbound_id"],
    )


_MARK_SENT = update(outbox).where(outbox.c.id == bindparam("b_id")).values(sent_at=bindparam("b_at"))


async def _mark_sent(conn: AsyncConnection, marks: dict[int, datetime]) -> None:
    """Set `sent_at` on confirmed outbox rows, in one statement."""
    if marks:
        await conn.execute(_MARK_SENT, [{"b_id": i, "b_at": at} for i, at in marks.items()])


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
        and never in a commit. A commit that crosses the automatic checkpoint copies the log itself: measured,
        that made one commit in a hundred take 50-100 ms instead of 2, and held its whole batch."""
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
        self.checkpoint_every = checkpoint_every if self.is_sqlite else None
        self._checkpoints: asyncio.Task[None] | None = None
        if self.is_sqlite:
            autocheckpoint = 0 if self.checkpoint_every else 8000
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas(autocheckpoint))
        self._write_lock = asyncio.Lock()
        self._sent_marks: dict[int, datetime] = {}  # confirmed by the broker, to be marked at the next commit
        self._marking: dict[int, datetime] = {}  # being marked by the transaction in progress
        self._commits = 0  # commits that wrote sent marks
        self._writes = 0  # write transactions committed
        self._marked: dict[int, int] = {}  # rows marked sent, with the commit that did it (for reads begun before)
        self._handing: set[int] = set()  # outbox rows of the commit in progress: its own to hand to the relay
        self.on_queued: Callable[[list[OutboxMessage]], None] | None = None

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
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A write transaction; a database fault becomes `TransientError` so the message is retried.

        After the commit, the outbox rows it wrote go to `on_queued` (the relay publishes them without reading
        them back); outbox rows the broker confirmed since the last commit are marked sent in the same commit.
        """
        async with self._write_lock:
            marks, self._sent_marks = self._sent_marks, {}
            self._marking = marks
            try:
                async with self.engine.begin() as conn:
                    tx = Transaction(conn, locking=not self.is_sqlite)
                    yield tx
                    await tx.flush()
                    if marks:
                        await (await tx.writer()).update(
                            outbox, ("sent_at",), ("id",), [{"sent_at": at, "id": i} for i, at in marks.items()]
                        )
                    await tx.flush_audit()
                    # Visible to a poll once committed, but handed to the relay only when the commit returns here.
                    self._handing = {m.id for m in tx.queued}
            except BaseException as err:
                self._handing = set()
                self._sent_marks = {**marks, **self._sent_marks}
                if isinstance(err, OperationalError | DBAPIError | OSError | ConnectionError):
                    raise TransientError(f"database unavailable: {type(err).__name__}") from err
                raise
            finally:
                self._marking = {}
        self._writes += 1
        if marks:
            self._commits += 1
            self._marked.update(dict.fromkeys(marks, self._commits))
        self._handing = set()
        if tx.queued and self.on_queued is not None:
            self.on_queued(tx.queued)

    def sent_later(self, ids: Iterable[int], now: datetime) -> None:
        """Note rows the broker confirmed; they are marked sent with the next commit (or `write_sent_marks`)."""
        for i in ids:
            self._sent_marks[i] = now

    @property
    def marks_waiting(self) -> bool:
        """Whether confirmed rows wait to be marked sent."""
        return bool(self._sent_marks)

    async def write_sent_marks(self) -> None:
        """Mark the confirmed rows sent now, in a transaction of their own."""
        if self._sent_marks:
            async with self.transaction():
                pass

    async def unsent(self, limit: int = 200) -> list[OutboxMessage]:
        """Outbox rows not yet confirmed by the broker, oldest first.

        Rows confirmed but not yet marked are left out, and so are rows whose mark committed while this read
        was under way (its snapshot may predate the mark), and rows of a commit that has not yet returned (it
        hands them to `on_queued` itself).
        """
        began = self._commits
        q = select(outbox).where(outbox.c.sent_at.is_(None)).order_by(outbox.c.id).limit(limit)
        async with self._faults(), self.engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        skip = self._sent_marks.keys() | self._marking.keys() | self._marked.keys() | self._handing
        self._marked = {i: c for i, c in self._marked.items() if c > began}  # later reads see those marks
        return [m for m in map(_outbox_from_row, rows) if m.id not in skip]

    async def mark_sent(self, ids: Sequence[int], now: datetime) -> None:
        """Record that the broker confirmed these rows."""
        if not ids:
            return
        async with self._write_lock, self._faults(), self.engine.begin() as conn:
            await _mark_sent(conn, dict.fromkeys(ids, now))

    async def fetch(self, query: Any) -> list[Row[Any]]:
        """Run a read-only query (administration and tests)."""
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).all())
