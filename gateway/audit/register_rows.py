"""The register's rows against the records that vouch for them (contract 4.3; docs/records.md, "Audit").

- Each version a message made (`record_history` without an import) against its `record` audit record, every
  column; each such record against its row.
- Each import's versions against the rows digest its `record-import` record names (so one record vouches for a
  million rows, and an edit of any of them shows).
- Each record's current row against the history row of its version (so the register a match reads is the one
  the history and the chain vouch for).
- Each hit against its `hit` record, and back.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from gateway.audit.walk import ChainCheck, Vouch
from gateway.core import chain as rules
from gateway.store.audit_reads import RegisterRows, StoredRows
from gateway.store.imports import version_digest
from gateway.store.register import RECORD_COLUMNS, record_from_row, record_values

_KEY = ("state", "reference")
_COLUMNS = (*_KEY, *RECORD_COLUMNS)
_HIT = ("status", "found_by", "score", "matched_on", "inbound_id")


def _same(recorded: Any, stored: Any) -> bool:
    """A recorded value (JSON) and a stored one agree (times as moments)."""
    if isinstance(stored, datetime):
        try:
            return rules.parse_at(str(recorded)) == (stored if stored.tzinfo else stored.replace(tzinfo=UTC))
        except ValueError:
            return False
    return bool(recorded == stored)


def _differs(vouch: Vouch, row: Any, columns: tuple[str, ...]) -> list[str]:
    """The columns of `row` that differ from what the record holds."""
    return [c for c in columns if not _same(vouch.data.get(c), getattr(row, c))]


async def _versions(rows: RegisterRows, check: ChainCheck) -> list[str]:
    """Message-made versions against their records, and back."""
    problems = []
    async for row in rows.history():
        key = (row.state, row.reference, row.version)
        vouch = check.register.pop(key, None)
        name = f"version {row.version} of record {row.state} {row.reference}"
        if vouch is None:
            problems.append(f"{name} has no audit record (inserted behind the gateway's back)")
            continue
        differs = _differs(vouch, row, _COLUMNS)
        if vouch.data.get("inbound_id") != row.inbound_id or vouch.data.get("change") != row.change:
            differs.append("change")
        if differs:
            problems.append(
                f"record {vouch.seq}: the stored {', '.join(differs)} of {name} differs from what was recorded"
            )
    problems += [
        f"record {v.seq}: vouches for version {version} of record {state} {reference}, which is missing (deleted)"
        for (state, reference, version), v in check.register.items()
    ]
    return problems


async def _imports(rows: RegisterRows, check: ChainCheck) -> list[str]:
    """Each import's versions against the digest its record names."""
    problems = []
    for import_id, vouch in check.imports.items():
        digest, taken = hashlib.sha256(), 0
        async for row in rows.history(import_id):
            version_digest(digest, record_values(record_from_row(row)))
            taken += 1
        if digest.hexdigest() != vouch.data.get("rows_sha256") or taken != vouch.data.get("taken"):
            problems.append(
                f"record {vouch.seq}: the {taken} stored version(s) of register import {import_id} no longer match "
                "the SHA-256 it recorded (a row edited, added or deleted)"
            )
    return problems


async def _current(rows: RegisterRows) -> list[str]:
    """Each record's row against the history row of its version."""
    problems = []
    async for row in rows.current():
        name = f"record {row.state} {row.reference}"
        if row.h_id is None:
            problems.append(f"{name}: version {row.version} has no history row (written behind the gateway's back)")
            continue
        differs = [c for c in RECORD_COLUMNS if not _same_row(getattr(row, c), getattr(row, f"h_{c}"))]
        if differs:
            problems.append(f"{name}: the stored {', '.join(differs)} differs from its version {row.version}")
    return problems


def _same_row(a: Any, b: Any) -> bool:
    """Two stored values agree (SQLite may hand back one time naive and the other not)."""
    if isinstance(a, datetime) and isinstance(b, datetime):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None)
    return bool(a == b)


async def _hits(rows: RegisterRows, check: ChainCheck) -> list[str]:
    """Each hit against its record, and back."""
    problems = []
    async for row in rows.hits():
        vouch = check.hits.pop((row.state, row.reference, row.trace_id), None)
        name = f"the hit of record {row.state} {row.reference} on trace {row.trace_id}"
        if vouch is None:
            problems.append(f"{name} has no audit record (inserted behind the gateway's back)")
        elif differs := _differs(vouch, row, _HIT):
            problems.append(f"record {vouch.seq}: the stored {', '.join(differs)} of {name} differs from the record")
    problems += [
        f"record {v.seq}: vouches for the hit of record {s} {r} on trace {t}, which is missing (deleted)"
        for (s, r, t), v in check.hits.items()
    ]
    return problems


async def check_register(reads: StoredRows, check: ChainCheck) -> list[str]:
    """Every register row against the chain, and every register record against its row."""
    rows = RegisterRows(reads)
    return [
        *await _versions(rows, check),
        *await _imports(rows, check),
        *await _current(rows),
        *await _hits(rows, check),
    ]
