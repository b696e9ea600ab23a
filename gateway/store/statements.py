"""The hot path's statements, built once (building one per call costs more CPU than SQLite spends running it),
and the one query of traces by filter that the pipeline, the StatusQuery and the administrators share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.core.model import Trace
from gateway.store import bulk
from gateway.store.rows import trace_from_row
from gateway.store.tables import audit_head, deadlines, inbound, outbox, traces

TRACE_COLUMNS = tuple(c.name for c in traces.c if c.name != "trace_id")  # what a trace's update sets
HEAD = select(audit_head).where(audit_head.c.id == 1)
HEAD_LOCKED = HEAD.with_for_update()
# Senders and keys as two lists (the exact pairs are picked after): a row-value IN, `(sender, key) IN (...)`, is
# not served by the unique index on SQLite, which then scans the whole inbound table for every batch.
EARLIER = select(inbound).where(
    inbound.c.sender.in_(bindparam("b_senders", expanding=True)),
    inbound.c.dedup_key.in_(bindparam("b_keys", expanding=True)),
)
TRACES = select(traces).where(traces.c.trace_id.in_(bindparam("b_ids", expanding=True)))
TRACES_LOCKED = TRACES.with_for_update()
ONE_TRACE = select(traces).where(traces.c.trace_id == bindparam("b_id"))
ONE_TRACE_LOCKED = ONE_TRACE.with_for_update()
SETTLE: dict[frozenset[str], Any] = {}
# The same reads for SQLite's driver (see `bulk.Query`): a list parameter's values fill its IN.
Q_EARLIER = bulk.Query(
    lambda bind: select(inbound).where(inbound.c.sender.in_(bind("senders")), inbound.c.dedup_key.in_(bind("keys")))
)
Q_TRACES = bulk.Query(lambda bind: select(traces).where(traces.c.trace_id.in_(bind("ids"))))
Q_HEAD = bulk.Query(lambda bind: select(audit_head).where(audit_head.c.id == bind("id")))


def settle_statement(kinds: frozenset[str]) -> Any:
    """Cancel a trace's pending notices of `kinds` (one statement per set of kinds, built once)."""
    statement = SETTLE.get(kinds)
    if statement is None:
        statement = SETTLE[kinds] = (
            update(deadlines)
            .where(
                deadlines.c.trace_id == bindparam("b_trace_id"),
                deadlines.c.status == "pending",
                or_(*(deadlines.c.kind == literal(str(k)) for k in sorted(kinds))),
            )
            .values(status="cancelled", settled_at=bindparam("b_at"))
        )
    return statement


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


def due_notices(now: datetime, limit: int, *, locking: bool) -> Any:
    """Pending notices whose time has come, oldest first (locked, skipping rows another gateway holds)."""
    statement = (
        select(deadlines)
        # A literal, not a bound parameter: the planner must see it matches the partial index's predicate.
        .where(deadlines.c.status == literal("pending", literal_execute=True), deadlines.c.fire_at <= now)
        .order_by(deadlines.c.fire_at, deadlines.c.id)
        .limit(limit)
    )
    return statement.with_for_update(skip_locked=True) if locking else statement


ANSWERS = select(outbox).where(outbox.c.inbound_id.in_(bindparam("b_ids", expanding=True))).order_by(outbox.c.id)
