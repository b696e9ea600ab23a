"""The register's rows: a `RegisterRecord` to its columns and back, the reads a batch needs (records by reference,
candidates by shape key, hits by trace) and the writes of its changes and hits, with their audit entries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select

from gateway.core import chain as audit_rules
from gateway.records.matching import Described, serial_key, shape_key
from gateway.records.register import Hit, RegisterChange, RegisterRecord
from gateway.store import bulk
from gateway.store.rows import aware
from gateway.store.tables import record_history, record_hits, records

RECORD_COLUMNS = tuple(c.name for c in records.c if c.name not in {"id", "state", "reference"})  # what an update sets

BY_REFERENCE = select(records).where(records.c.reference.in_(bindparam("b_refs", expanding=True)))
BY_REFERENCE_LOCKED = BY_REFERENCE.with_for_update()
CANDIDATES = select(records).where(
    records.c.shape_key.in_(bindparam("b_shapes", expanding=True)), records.c.status != "withdrawn"
)
HITS = select(record_hits.c.state, record_hits.c.reference, record_hits.c.trace_id).where(
    record_hits.c.trace_id.in_(bindparam("b_traces", expanding=True))
)
# The same reads for SQLite's driver (see `bulk.Query`).
Q_BY_REFERENCE = bulk.Query(lambda bind: select(records).where(records.c.reference.in_(bind("refs"))))
Q_CANDIDATES = bulk.Query(
    lambda bind: select(records).where(records.c.shape_key.in_(bind("shapes")), records.c.status != bind("gone"))
)
Q_HITS = bulk.Query(
    lambda bind: select(record_hits.c.state, record_hits.c.reference, record_hits.c.trace_id).where(
        record_hits.c.trace_id.in_(bind("traces"))
    )
)


def record_values(record: RegisterRecord) -> dict[str, Any]:
    """A record's column values (its keys computed from its serial)."""
    f = record.firearm
    return {
        "state": record.state,
        "reference": record.reference,
        "status": record.status,
        "serial": f.serial,
        "serial_key": serial_key(f.serial or ""),
        "shape_key": shape_key(f.serial or ""),
        "make": f.make,
        "model": f.model,
        "caliber": f.caliber,
        "country": f.country,
        "date": record.date,
        "place": record.place,
        "circumstances": record.circumstances,
        "reported_at": record.reported_at,
        "updated_at": record.updated_at,
        "version": record.version,
        "source": record.source,
        "withdrawal_reason": record.withdrawal_reason,
        "withdrawal_text": record.withdrawal_text,
        "reported_status": record.reported_status,
    }


def record_from_row(row: Any) -> RegisterRecord:
    """A `RegisterRecord` from its row (SQLAlchemy's or the driver's)."""
    m = row._mapping
    return RegisterRecord(
        state=m["state"],
        reference=m["reference"],
        status=m["status"],
        firearm=Described(m["serial"], m["make"], m["model"], m["caliber"], m["country"]),
        date=m["date"],
        place=m["place"],
        circumstances=m["circumstances"],
        reported_at=aware(m["reported_at"]),  # type: ignore[arg-type]
        updated_at=aware(m["updated_at"]),  # type: ignore[arg-type]
        version=m["version"],
        source=m["source"],
        withdrawal_reason=m["withdrawal_reason"],
        withdrawal_text=m["withdrawal_text"],
        reported_status=m["reported_status"],
    )


def history_row(
    values: dict[str, Any], change: str, *, inbound_id: int | None, import_id: int | None
) -> dict[str, Any]:
    """A `record_history` row: the version's values and what made it."""
    return {**values, "change": change, "inbound_id": inbound_id, "import_id": import_id}


def hit_row(hit: Hit, inbound_id: int | None) -> dict[str, Any]:
    """A `record_hits` row."""
    return {
        "state": hit.state,
        "reference": hit.reference,
        "status": hit.status,
        "trace_id": hit.trace_id,
        "found_by": hit.found_by,
        "score": hit.match.score,
        "matched_on": ",".join(hit.match.matched_on),
        "at": hit.at,
        "inbound_id": inbound_id,
    }


def change_entry(change: RegisterChange, values: dict[str, Any], inbound_id: int | None) -> audit_rules.Entry:
    """The audit entry of a record's new version: every column, what made it, and which message."""
    data = {"change": change.change, "inbound_id": inbound_id, **values}
    return audit_rules.Entry(audit_rules.RecordType.RECORD, change.record.updated_at, data)


def hit_entry(hit: Hit, inbound_id: int | None) -> audit_rules.Entry:
    """The audit entry of a hit."""
    data = {k: v for k, v in hit_row(hit, inbound_id).items() if k not in {"at", "trace_id"}}
    return audit_rules.Entry(audit_rules.RecordType.HIT, hit.at, data, hit.trace_id)


async def write_changes(
    writer: bulk.Writer,
    changes: Sequence[tuple[RegisterChange, int | None]],
    *,
    import_id: int | None = None,
) -> list[audit_rules.Entry]:
    """Write records' new versions (inserted when new, else updated, in order) and their history rows; the audit
    entries, in order (none for an import, which one entry of its own covers)."""
    values = [record_values(c.record) for c, _ in changes]
    await writer.insert(records, [v for (c, _), v in zip(changes, values, strict=True) if c.new])
    await writer.update(
        records,
        RECORD_COLUMNS,
        ("state", "reference"),
        [v for (c, _), v in zip(changes, values, strict=True) if not c.new],
    )
    rows = [
        history_row(v, c.change, inbound_id=i, import_id=import_id) for (c, i), v in zip(changes, values, strict=True)
    ]
    await writer.insert(record_history, rows)
    if import_id is not None:
        return []
    return [change_entry(c, v, i) for (c, i), v in zip(changes, values, strict=True)]
