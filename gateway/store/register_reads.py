"""The administrators' reads of the register: records by filter, one record's versions, hits by state and period."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from gateway.store.tables import record_history, record_hits, records

if TYPE_CHECKING:
    from gateway.store.engine import Store

RECORD_VIEW = tuple(c.name for c in records.c if c.name not in {"id", "serial_key", "shape_key"})
HISTORY_VIEW = ("version", "change", "status", "updated_at", "source", *RECORD_VIEW[3:])
HIT_VIEW = ("at", "state", "reference", "status", "trace_id", "found_by", "score", "matched_on")


def _plain(row: Any, columns: tuple[str, ...]) -> dict[str, Any]:
    """A row as plain values (times as ISO text)."""
    m = row._mapping
    return {c: (m[c].isoformat() if isinstance(m[c], datetime) else m[c]) for c in dict.fromkeys(columns)}


async def list_records(
    store: Store,
    *,
    state: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Records (latest versions) by reporting state, status and when last changed, oldest change first."""
    q = select(records).order_by(records.c.updated_at, records.c.id)
    if state:
        q = q.where(records.c.state == state)
    if status:
        q = q.where(records.c.status == status)
    if since:
        q = q.where(records.c.updated_at >= since)
    if until:
        q = q.where(records.c.updated_at < until)
    if limit:
        q = q.limit(limit)
    async with store.engine.connect() as conn:
        return [_plain(r, RECORD_VIEW) for r in (await conn.execute(q)).all()]


async def record_versions(store: Store, state: str, reference: str) -> list[dict[str, Any]]:
    """Every version of one record, first to last (empty when there is no such record)."""
    q = (
        select(record_history)
        .where(record_history.c.state == state, record_history.c.reference == reference)
        .order_by(record_history.c.version, record_history.c.id)
    )
    async with store.engine.connect() as conn:
        return [_plain(r, HISTORY_VIEW) for r in (await conn.execute(q)).all()]


async def list_hits(
    store: Store, *, state: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Hits in time order; with `state`, those where it is the reporting state or the finder."""
    q = select(record_hits).order_by(record_hits.c.at, record_hits.c.id)
    if state:
        q = q.where(or_(record_hits.c.state == state, record_hits.c.found_by == state))
    if since:
        q = q.where(record_hits.c.at >= since)
    if until:
        q = q.where(record_hits.c.at < until)
    async with store.engine.connect() as conn:
        return [_plain(r, HIT_VIEW) for r in (await conn.execute(q)).all()]
