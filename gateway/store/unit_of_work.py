"""The unit of work the committer speaks to: one read of what a batch needs, then one write and one commit.

`load` reads, in a few statements, the snapshot `decide` needs (earlier messages in the batch's duplicate slots
with their first answers, the traces it names, the pages its status queries ask for); `commit` writes every
effect in bulk, appends the audit chain and commits, and returns the outbox rows it wrote (with their ids).

How the engine is reached is the store's `strategies.Strategy`, chosen once: on SQLite the batch's reads go to the
driver (`bulk.Query`), on PostgreSQL through SQLAlchemy with the traces locked (`FOR UPDATE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.core.effects import Effects, OutboxMessage
from gateway.core.model import Trace
from gateway.core.snapshot import Earlier, Page, PageQuery, Snapshot, Wanted
from gateway.records.register import RegisterRecord
from gateway.routing.table import RoutingTable
from gateway.store import statements as q
from gateway.store.register import record_from_row
from gateway.store.rows import outbox_from_row, trace_from_row
from gateway.store.transaction import Transaction

if TYPE_CHECKING:
    from gateway.store.engine import Store


class SqlUnitOfWork:
    """One batch's transaction; committed only by `commit` (leaving without it rolls everything back)."""

    def __init__(self, tx: Transaction, store: Store) -> None:
        self.tx = tx
        self._store = store
        self.committed = False
        self.table_version: str | None = None  # the routing table version this commit made sure is kept

    async def load(self, wanted: Wanted) -> Snapshot:
        """The snapshot of everything `wanted` names, as the database holds it now."""
        earlier = await self._earlier(wanted.slots) if wanted.slots else {}
        traces = await self._traces(wanted.trace_ids) if wanted.trace_ids else {}
        pages = {query: await self._page(query, wanted.slack) for query in wanted.pages}
        tx, strategy = self.tx, self.tx.strategy
        records: dict[tuple[str, str], RegisterRecord] = {}
        candidates: dict[str, tuple[RegisterRecord, ...]] = {}
        hits: frozenset[tuple[str, str, str]] = frozenset()
        if wanted.references:
            rows = await strategy.records(tx.conn, tx.writer, wanted.references)
            records = {(r.state, r.reference): record_from_row(r) for r in rows}
        if wanted.shapes:
            found: dict[str, list[RegisterRecord]] = {}
            for row in await strategy.candidates(tx.conn, tx.writer, wanted.shapes):
                found.setdefault(row.shape_key, []).append(record_from_row(row))
            candidates = {shape: tuple(rs) for shape, rs in found.items()}
        if wanted.hit_traces:
            rows = await strategy.hits(tx.conn, tx.writer, wanted.hit_traces)
            hits = frozenset((r.state, r.reference, r.trace_id) for r in rows)
        return Snapshot(earlier=earlier, traces=traces, pages=pages, records=records, candidates=candidates, hits=hits)

    async def _earlier(self, slots: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Earlier]:
        """Earlier messages in these slots, with the answers first sent to their senders. Senders and keys go as
        two lists (the exact pairs are picked after): a row-value IN is not served by SQLite's unique index."""
        senders, keys = sorted({s for s, _ in slots}), sorted({k for _, k in slots})
        rows = await self.tx.strategy.earlier(self.tx.conn, self.tx.writer, senders, keys)
        wanted = set(slots)
        found = [r for r in rows if (r.sender, r.dedup_key) in wanted]
        if not found:
            return {}
        answered: dict[int, list[OutboxMessage]] = {}
        for row in (await self.tx.conn.execute(q.ANSWERS, {"b_ids": [r.id for r in found]})).all():
            answered.setdefault(row.inbound_id, []).append(outbox_from_row(row))
        return {
            (r.sender, r.dedup_key): Earlier(
                inbound_id=r.id,
                kind=r.kind,
                message_id=r.message_id,
                code=r.code,
                trace_id=r.trace_id,
                outcome=r.outcome,
                answers=tuple(m for m in answered.get(r.id, ()) if m.recipient == r.sender),
            )
            for r in found
        }

    async def _traces(self, trace_ids: Sequence[str]) -> dict[str, Trace]:
        """The traces with these ids that exist (locked on PostgreSQL)."""
        rows = await self.tx.strategy.traces(self.tx.conn, self.tx.writer, trace_ids)
        return {r.trace_id: trace_from_row(r) for r in rows}

    async def _page(self, query: PageQuery, slack: int) -> Page:
        """A status query's page as stored: its `After` trace among the state's own, and what follows it.

        An `After` the store does not hold may still be a trace the same batch opens (just now, so nothing stored
        comes after it): the page is then empty and `decide` reads what the batch did."""
        conn, state = self.tx.conn, query.state
        after = None
        if query.after_id:
            known = await q.select_traces(conn, state=state, trace_id=query.after_id)
            if not known:
                return Page(after=None, traces=())
            after = known[0]
        if query.trace_id:
            found = await q.select_traces(conn, state=state, trace_id=query.trace_id, after=after)
        else:
            found = await q.select_traces(
                conn,
                state=state,
                role=query.role,
                status=query.status,
                since=query.since,
                after=after,
                limit=query.limit + 1 + slack,
            )
        return Page(after=after, traces=tuple(found))

    async def commit(
        self, effects: Sequence[Effects], *, table: RoutingTable | None = None, now: datetime | None = None
    ) -> list[OutboxMessage]:
        """Write the effects (after the routing table version they were decided by, the first time it is used, at
        `now`), chain their audit records, commit; the outbox rows written, with their ids, in order."""
        if table is not None and now is not None and not self._store.knows_table(table.version):
            await self.tx.remember_table(table.version, table.canonical(), now)
            self.table_version = table.version
        for e in effects:
            self.tx.record(e)
        await self.tx.flush()
        await self.tx.flush_audit()
        await self._store.commit_now(self)
        return list(self.tx.queued)
