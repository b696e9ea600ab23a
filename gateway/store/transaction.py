"""One database transaction: the writes of decided messages in bulk, the audit chain's append, and the reads the
scheduler and the checkpoints need. The committer reaches it through `unit_of_work.SqlUnitOfWork`."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core import chain as audit_rules
from gateway.core.effects import Effects, OutboxMessage
from gateway.core.model import Trace
from gateway.store import bulk
from gateway.store import statements as q
from gateway.store.register import hit_entry, hit_row, write_changes
from gateway.store.rows import aware, message_in, message_out, outbox_row, trace_entry, trace_from_row, trace_values
from gateway.store.strategies import Strategy
from gateway.store.tables import (
    audit,
    audit_head,
    deadlines,
    inbound,
    outbox,
    record_hits,
    routing_tables,
    traces,
)


class Transaction:
    """Reads and writes that commit together or not at all.

    Effects are `record`ed and written in bulk at the next `flush` (and at commit): a batch of messages costs a
    handful of statements, not a handful each. Outbox rows written here are kept, with their ids, in `queued`.
    """

    def __init__(self, conn: AsyncConnection, strategy: Strategy) -> None:
        self.conn = conn
        self.strategy = strategy  # how this engine is reached (see `strategies`)
        self._audit: list[audit_rules.Entry] = []
        self._pending: list[Effects] = []
        self.queued: list[OutboxMessage] = []  # outbox rows written here, with their ids
        self._writer: bulk.Writer | None = None

    async def writer(self) -> bulk.Writer:
        """The driver-level writer for this transaction's bulk writes (see `bulk`), made on first use."""
        if self._writer is None:
            self._writer = await self.strategy.writer(self.conn)
        return self._writer

    def audit(self, entry: audit_rules.Entry) -> None:
        """Add an audit record; it joins the chain when this transaction commits."""
        self._audit.append(entry)

    async def chain_head(self) -> tuple[int, str, str] | None:
        """(seq, hash, type) of the chain's last record, locked for this transaction; None for an empty chain."""
        await self.flush()
        head = await self.strategy.head(self.conn, self.writer)
        if head is None:
            return None
        kind = (await self.conn.execute(select(audit.c.type).where(audit.c.seq == head.seq))).scalar_one_or_none()
        return head.seq, head.hash, kind or ""

    async def flush_audit(self) -> audit_rules.Record | None:
        """Chain this transaction's audit records after the head, under the head's lock; returns the last one."""
        await self.flush()
        if not self._audit:
            return None
        head = await self.strategy.head(self.conn, self.writer)
        seq, prev = (head.seq, head.hash) if head else (0, audit_rules.GENESIS)
        records = audit_rules.chain(self._audit, seq, prev)
        writer = await self.writer()
        await writer.insert(audit, [r.__dict__ for r in records])
        last = records[-1]
        if head is None:
            await self.conn.execute(insert(audit_head).values(id=1, seq=last.seq, hash=last.hash))
        else:
            await writer.update(audit_head, ("seq", "hash"), ("id",), [{"seq": last.seq, "hash": last.hash, "id": 1}])
        self._audit.clear()
        return last

    def record(self, effects: Effects) -> None:
        """Queue one decided message's effects; they are written at the next flush, in the order recorded."""
        self._pending.append(effects)

    async def flush(self) -> None:
        """Write every recorded effect: each table in one statement, the audit entries in the recorded order."""
        if not self._pending:
            return
        effects, self._pending = self._pending, []
        writer = await self.writer()
        recorded = [e for e in effects if e.record is not None]
        ids = iter(await writer.insert_returning_ids(inbound, [e.record.__dict__ for e in recorded if e.record]))
        inbound_ids = [next(ids) if e.record is not None else None for e in effects]
        values = [trace_values(e.trace) if e.trace is not None else {} for e in effects]
        pairs = list(zip(effects, values, strict=True))
        await writer.insert(traces, [v for e, v in pairs if e.trace is not None and e.new_trace])
        changed = [v for e, v in pairs if e.trace is not None and not e.new_trace]
        await writer.update(traces, q.TRACE_COLUMNS, ("trace_id",), changed)
        await self._write_notices(effects, writer)
        rows = [outbox_row(m, i, e.when) for e, i in zip(effects, inbound_ids, strict=True) for m in e.outgoing]
        outbox_ids = iter(await writer.insert_returning_ids(outbox, rows))
        register = iter(await self._write_register(effects, inbound_ids, writer))
        for e, inbound_id, v in zip(effects, inbound_ids, values, strict=True):
            if e.record is not None:
                assert inbound_id is not None
                self.audit(message_in(e.record, inbound_id))
            if e.trace is not None:
                self.audit(trace_entry(e, v))
            for _ in e.register:
                self.audit(next(register))
            for hit in e.hits:
                self.audit(hit_entry(hit, inbound_id))
            for m in e.outgoing:
                outbox_id = next(outbox_ids)
                self.audit(message_out(m, outbox_id, inbound_id, e.when))
                self.queued.append(replace(m, id=outbox_id, inbound_id=inbound_id))

    async def _write_register(
        self, effects: Sequence[Effects], inbound_ids: Sequence[int | None], writer: bulk.Writer
    ) -> list[audit_rules.Entry]:
        """Write the register changes and hits of the batch; the changes' audit entries, in order."""
        changes = [(c, i) for e, i in zip(effects, inbound_ids, strict=True) for c in e.register]
        hits = [hit_row(h, i) for e, i in zip(effects, inbound_ids, strict=True) for h in e.hits]
        await writer.insert(record_hits, hits)
        return await write_changes(writer, changes) if changes else []

    async def _write_notices(self, effects: Sequence[Effects], writer: bulk.Writer) -> None:
        """Settle and plan deadline notices as if message by message: a later message settles what an earlier
        one of the batch planned (in memory), and what was pending before the batch (one statement per kind set)."""
        planned: list[dict[str, Any]] = []
        settled: dict[frozenset[str], list[dict[str, Any]]] = {}
        for e in effects:
            if e.trace is None:
                continue
            trace_id, now = e.trace.trace_id, e.when
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
            await self.conn.execute(q.settle_statement(kinds), params)
        await writer.insert(deadlines, planned)

    async def add_outbox(self, messages: Sequence[OutboxMessage], *, inbound_id: int | None, now: datetime) -> None:
        """Queue signed messages for the relay, now."""
        if not messages:
            return
        await self.flush()
        rows = [outbox_row(m, inbound_id, now) for m in messages]
        ids = await (await self.writer()).insert_returning_ids(outbox, rows)
        for outbox_id, m in zip(ids, messages, strict=True):
            self.audit(message_out(m, int(outbox_id), inbound_id, now))
            self.queued.append(replace(m, id=int(outbox_id), inbound_id=inbound_id))

    async def remember_table(self, version: str, content: str, now: datetime) -> bool:
        """Keep a routing table version the first time it is used; whether it was new."""
        await self.flush()
        found = select(routing_tables.c.version).where(routing_tables.c.version == version)
        if (await self.conn.execute(found)).first() is not None:
            return False
        await self.conn.execute(insert(routing_tables).values(version=version, content=content, first_used_at=now))
        self.audit(
            audit_rules.Entry(
                audit_rules.RecordType.ROUTING_TABLE,
                now,
                {"version": version},
                None,
                hashlib.sha256(content.encode()).hexdigest(),
            )
        )
        return True

    async def get_trace(self, trace_id: str) -> Trace | None:
        """A trace (locked where the database can lock rows)."""
        statement = q.ONE_TRACE_LOCKED if self.strategy.locking else q.ONE_TRACE
        row = (await self.conn.execute(statement, {"b_id": trace_id})).first()
        return trace_from_row(row) if row else None

    async def due_notices(self, now: datetime, limit: int) -> list[Row[Any]]:
        """Pending notices whose time has come, oldest first (locked, skipping rows another gateway holds)."""
        await self.flush()
        return list((await self.conn.execute(q.due_notices(now, limit, locking=self.strategy.locking))).all())

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
            await self.conn.execute(
                update(deadlines).where(deadlines.c.id.in_(list(ids))).values(status="fired", settled_at=now)
            )
