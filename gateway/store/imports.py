"""A register import written in one transaction: the rows taken (new records, or new versions of the state's
existing ones), their history, the import's row, and one audit record naming the file's SHA-256, the counts and
the SHA-256 of the versions taken (in order), from which `audit replay` rebuilds the import exactly."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, insert, select, update

from gateway.core import chain as audit_rules
from gateway.records.imports import Refusal, file_sha256, read_rows
from gateway.records.register import Change, RegisterChange, RegisterRecord, Report, report
from gateway.store.register import record_from_row, record_values, write_changes
from gateway.store.tables import record_history, record_imports, records
from gateway.store.transaction import Transaction

if TYPE_CHECKING:
    from gateway.store.engine import Store

CHUNK = 5000  # rows read, checked against the register and written per round
Progress = Callable[[int], None]  # rows read so far


@dataclass
class ImportSummary:
    """What an import took and refused (with each refusal's line and reason)."""

    state: str
    file_name: str
    file_sha256: str
    taken: int = 0
    new: int = 0
    updated: int = 0
    refused: list[Refusal] = field(default_factory=list)
    import_id: int | None = None
    rows_sha256: str = ""
    lookup: bool = True  # whether rows may update records the state already has (else all are new)


def version_digest(digest: Any, values: dict[str, Any]) -> None:
    """Add one version's values to an import's rows digest (canonical JSON, a newline after each)."""
    digest.update(audit_rules.canonical(values).encode("utf-8") + b"\n")


class _Statements:
    """Writes through SQLAlchemy on the import's connection: on PostgreSQL the driver-level writer would lock the
    audit head at once (`strategies.PostgresLocked`), stopping the switch for the whole import; this way the head
    is locked only for the import's one audit record, at its end."""

    def __init__(self, tx: Transaction) -> None:
        self._conn = tx.conn

    async def insert(self, table: Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert rows."""
        if rows:
            await self._conn.execute(insert(table), list(rows))

    async def update(
        self, table: Table, set_: Sequence[str], where: Sequence[str], rows: Sequence[dict[str, Any]]
    ) -> None:
        """Update rows matched on `where`."""
        if rows:
            statement = (
                update(table)
                .where(*(table.c[k] == bindparam(f"w_{k}") for k in where))
                .values({k: bindparam(f"s_{k}") for k in set_})
            )
            params = [{**{f"w_{k}": r[k] for k in where}, **{f"s_{k}": r[k] for k in set_}} for r in rows]
            await self._conn.execute(statement, params)


async def _writer(tx: Transaction) -> Any:
    """The import's writer: the driver's where nothing is locked by it (SQLite), else SQLAlchemy's."""
    return _Statements(tx) if tx.strategy.locking else await tx.writer()


async def _has_records(tx: Transaction, state: str) -> bool:
    """Whether the state has any record yet (a first migration has none: no row of it needs looking up). Where it
    has, PostgreSQL's statistics are brought up to date first: a register loaded moments ago (another state's
    import) still counts as empty to the planner, which would then scan it for every chunk's lookup."""
    found = (await tx.conn.execute(select(records.c.id).where(records.c.state == state).limit(1))).first()
    if found is not None and tx.strategy.locking:
        await tx.conn.exec_driver_sql("ANALYZE records")
    return found is not None


async def _existing(tx: Transaction, state: str, references: Sequence[str]) -> dict[str, RegisterRecord]:
    """The state's records among these references."""
    statement = select(records).where(records.c.state == state, records.c.reference.in_(list(references)))
    return {r.reference: record_from_row(r) for r in (await tx.conn.execute(statement)).all()}


async def write_import(
    tx: Transaction,
    state: str,
    rows: Iterable[tuple[int, Report | Refusal]],
    summary: ImportSummary,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportSummary:
    """Take every `Report` of `rows` into the register for `state` (the caller commits, or, for a dry run, does not:
    nothing is written then, but every row is checked as it would be)."""
    if not dry_run:
        inserted = await tx.conn.execute(
            insert(record_imports)
            .values(
                state=state,
                file_name=summary.file_name,
                file_sha256=summary.file_sha256,
                at=now,
                taken=0,
                refused=0,
                rows_sha256="",
            )
            .returning(record_imports.c.id)
        )
        summary.import_id = int(inserted.scalar_one())
    digest = hashlib.sha256()
    chunk: list[Report] = []
    read = 0
    summary.lookup = await _has_records(tx, state)
    for _, found in rows:
        read += 1
        if isinstance(found, Refusal):
            summary.refused.append(found)
        else:
            chunk.append(found)
        if len(chunk) >= CHUNK:
            await _take(tx, state, chunk, summary, digest, now=now, dry_run=dry_run)
            chunk = []
        if progress is not None and read % 1000 == 0:
            progress(read)
    if chunk:
        await _take(tx, state, chunk, summary, digest, now=now, dry_run=dry_run)
    if progress is not None:
        progress(read)
    summary.rows_sha256 = digest.hexdigest()
    if not dry_run:
        await _finish(tx, summary, now)
    return summary


async def _take(
    tx: Transaction,
    state: str,
    chunk: list[Report],
    summary: ImportSummary,
    digest: Any,
    *,
    now: datetime,
    dry_run: bool,
) -> None:
    """One chunk: each row a new record or a new version of the state's own."""
    existing = await _existing(tx, state, [r.reference for r in chunk]) if summary.lookup else {}
    source = f"import:{summary.import_id}" if summary.import_id is not None else "import:dry-run"
    changes: list[tuple[RegisterChange, int | None]] = []
    for says in chunk:
        made = report(existing.get(says.reference), state, says, source=source, now=now)
        changes.append((RegisterChange(made.record, Change.IMPORTED, new=made.new), None))
        version_digest(digest, record_values(made.record))
        summary.new += made.new
        summary.updated += not made.new
    summary.taken += len(chunk)
    if not dry_run:
        await write_changes(await _writer(tx), changes, import_id=summary.import_id)


async def _finish(tx: Transaction, summary: ImportSummary, now: datetime) -> None:
    """The import's row completed, and its audit record."""
    await tx.conn.execute(
        update(record_imports)
        .where(record_imports.c.id == summary.import_id)
        .values(taken=summary.taken, refused=len(summary.refused), rows_sha256=summary.rows_sha256)
    )
    tx.audit(
        audit_rules.Entry(
            audit_rules.RecordType.RECORD_IMPORT,
            now,
            {
                "import_id": summary.import_id,
                "state": summary.state,
                "file_name": summary.file_name,
                "file_sha256": summary.file_sha256,
                "taken": summary.taken,
                "new": summary.new,
                "updated": summary.updated,
                "refused": len(summary.refused),
                "rows_sha256": summary.rows_sha256,
            },
        )
    )


async def import_file(
    store: Store,
    path: Path,
    state: str,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import a CSV file of `state`'s register in one transaction (nothing is written on a dry run, or when the
    file cannot be read: a `ConfigurationError` names the fault)."""
    summary = ImportSummary(state=state, file_name=path.name, file_sha256=file_sha256(path))
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = read_rows(handle, str(path))
        async with store.unit_of_work() as uow:
            await write_import(uow.tx, state, rows, summary, now=now, dry_run=dry_run, progress=progress)
            if not dry_run:
                await uow.commit(())
    if not dry_run and not store.is_sqlite:
        await _analyze(store)
    return summary


async def _analyze(store: Store) -> None:
    """Bring PostgreSQL's statistics up to date after an import: a planner that still counts the register as empty
    (autovacuum off, or not yet run) scans 1.5 million rows for a batch's lookup of 64 serials instead of probing
    `ix_records_shape` (measured: docs/performance.md)."""
    async with store.engine.connect() as conn:
        await conn.exec_driver_sql("ANALYZE records")
        await conn.exec_driver_sql("ANALYZE record_history")
        await conn.commit()


async def replay_import(source: Store, sandbox: Store, data: dict[str, Any]) -> str | None:
    """Apply a recorded import to a replay's sandbox: the versions it took, read from the source's history and held
    to the rows digest its audit record names. Why it cannot be replayed, or None."""
    import_id = data.get("import_id")
    if not isinstance(import_id, int):
        return "the import record names no import"
    statement = select(record_history).where(record_history.c.import_id == import_id).order_by(record_history.c.id)
    async with source.engine.connect() as conn:
        versions = [record_from_row(r) for r in (await conn.execute(statement)).all()]
    digest = hashlib.sha256()
    for version in versions:
        version_digest(digest, record_values(version))
    if digest.hexdigest() != data.get("rows_sha256") or len(versions) != data.get("taken"):
        return f"import {import_id}: the stored rows no longer match the SHA-256 its audit record names; not replayed"
    changes = [(RegisterChange(v, Change.IMPORTED, new=v.version == 1), None) for v in versions]
    async with sandbox.unit_of_work() as uow:
        for start in range(0, len(changes), CHUNK):
            await write_changes(await _writer(uow.tx), changes[start : start + CHUNK], import_id=import_id)
        await uow.commit(())
    return None
