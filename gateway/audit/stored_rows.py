"""Stored rows against the records that vouch for them, both ways.

Each row must have a record, and match it in every column the record holds (its times included); each record
must still have its row: messages in (accepted and refused), messages out, traces (the last record of each trace
against its row), deadline notices (`audit_deadlines`), routing tables and the register (`register_rows`).
Accepted messages' original signatures are verified again, as of their reception.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from gateway.audit.deadline_rows import check_deadlines
from gateway.audit.register_rows import check_register
from gateway.audit.walk import ChainCheck, Vouch
from gateway.core import chain as rules
from gateway.store.audit_reads import TRACE_STATE_COLUMNS, TRACE_TIME_COLUMNS, StoredRows
from gateway.xml.signatures import reverify
from gateway.xml.trust import TrustStore

_IN, _OUT, _TABLE = rules.RecordType.MESSAGE_IN, rules.RecordType.MESSAGE_OUT, rules.RecordType.ROUTING_TABLE
_INBOUND = (
    "sender",
    "dedup_key",
    "message_id",
    "kind",
    "trace_id",
    "outcome",
    "code",
    "detail",
    "rule",
    "table_version",
)
_OUTBOX = ("message_id", "recipient", "kind", "inbound_id", "queue")
_OPTIONAL = frozenset({"queue"})  # not held by records written before it was
_ROW = {_IN: "inbound row", _OUT: "outbox row", _TABLE: "routing table"}
_ABSENT = object()


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _same_time(recorded: Any, stored: datetime | None) -> bool:
    """A recorded time (text) and a stored one are the same moment."""
    if recorded is None or stored is None:
        return recorded is None and stored is None
    try:
        return rules.parse_at(str(recorded)) == _aware(stored)
    except ValueError:
        return False


def _compare(kind: str, key: str, vouch: Vouch | None, stored: dict[str, Any], at: datetime | None) -> str | None:
    """Hold a stored row against the record that vouches for it: a description of the first difference."""
    if vouch is None:
        return (
            f"{_ROW[kind]} {key} has no audit record (inserted behind the gateway's back, or the chain's tail was cut)"
        )
    for name, value in stored.items():
        recorded = vouch.data.get(name, _ABSENT)
        if recorded is _ABSENT and name in _OPTIONAL:
            continue
        if recorded != value:
            return f"record {vouch.seq}: the stored {name} of {kind} row {key} differs from what was recorded"
    if not _same_time(vouch.at, at):
        return f"record {vouch.seq}: the stored time of {kind} row {key} differs from the record's time"
    return None


def _missing(check: ChainCheck, kind: str) -> list[str]:
    """Records of `kind` whose row was not found (the rows found were taken out of the index)."""
    return [
        f"record {v.seq}: vouches for {_ROW[kind]} {key}, which is missing (deleted)"
        for (k, key), v in check.vouched.items()
        if k == kind
    ]


async def check_rows(
    reads: StoredRows, check: ChainCheck, trust: TrustStore, signatures: bool
) -> tuple[int, int, list[str]]:
    """Every stored row against its record and every record against its row: (messages checked, signatures
    verified, problems)."""
    problems: list[str] = []
    verified = rows = 0
    async for row in reads.inbound():
        rows += 1
        digest = hashlib.sha256(row.body).hexdigest()
        vouch = check.vouched.pop((_IN, str(row.id)), None)
        issue = _compare(_IN, str(row.id), vouch, {n: getattr(row, n) for n in _INBOUND}, row.received_at)
        if issue is None and vouch is not None and digest != vouch.body_sha256:
            issue = f"record {vouch.seq}: the stored bytes of message-in row {row.id} no longer match their SHA-256"
        if issue is None and digest != row.sha256:
            issue = f"inbound row {row.id}: its bytes no longer match the SHA-256 stored beside them"
        if issue is None and signatures and row.outcome == "accepted":
            verified += 1
            issue = _sender_signature(row, trust)
        if issue:
            problems.append(issue)
    problems += _missing(check, _IN)
    async for row in reads.outbox():
        rows += 1
        vouch = check.vouched.pop((_OUT, str(row.id)), None)
        issue = _compare(_OUT, str(row.id), vouch, {n: getattr(row, n) for n in _OUTBOX}, row.created_at)
        if issue is None and vouch is not None and row.trace_id != vouch.trace_id:
            issue = (
                f"record {vouch.seq}: the stored trace_id of message-out row {row.id} differs from what was recorded"
            )
        if issue is None and vouch is not None and hashlib.sha256(row.body).hexdigest() != vouch.body_sha256:
            issue = f"record {vouch.seq}: the stored bytes of message-out row {row.id} no longer match their SHA-256"
        if issue:
            problems.append(issue)
    problems += _missing(check, _OUT)
    problems += await _check_traces(reads, check)
    planned = await reads.deadlines()
    problems += check_deadlines(check.notices, check.partial_traces, planned)
    for row in await reads.routing_tables():
        vouch = check.vouched.pop((_TABLE, row.version), None)
        issue = _compare(_TABLE, row.version, vouch, {}, row.first_used_at)
        if (
            issue is None
            and vouch is not None
            and hashlib.sha256(row.content.encode()).hexdigest() != vouch.body_sha256
        ):
            issue = (
                f"record {vouch.seq}: the stored content of routing table {row.version} no longer matches its SHA-256"
            )
        if issue:
            problems.append(issue)
    problems += _missing(check, _TABLE)
    problems += await check_register(reads, check)
    return rows, verified, problems


async def _check_traces(reads: StoredRows, check: ChainCheck) -> list[str]:
    """Each trace row against the last record of its trace, in every column that record holds; and each trace
    with records against its row."""
    problems = []
    async for row in reads.traces():
        last = check.traces.pop(row.trace_id, None)
        if last is None:
            problems.append(f"trace {row.trace_id} has no audit record (inserted behind the gateway's back)")
            continue
        differs = [
            name
            for name in TRACE_STATE_COLUMNS
            if name in last.data
            and not (
                _same_time(last.data[name], getattr(row, name))
                if name in TRACE_TIME_COLUMNS
                else last.data[name] == getattr(row, name)
            )
        ]
        if not _same_time(last.at, row.updated_at):
            differs.append("updated_at")
        if differs:
            problems.append(
                f"record {last.seq}: the stored {', '.join(differs)} of trace {row.trace_id} "
                "differs from its last recorded state"
            )
    problems += [
        f"record {v.seq}: trace {trace_id} has records, but its row is missing (deleted)"
        for trace_id, v in check.traces.items()
    ]
    return problems


def _sender_signature(row: Any, trust: TrustStore) -> str | None:
    """Re-verify an accepted message's original signature as of its reception."""
    err = reverify(row.body, trust, _aware(row.received_at) or datetime.now(UTC))
    return f"inbound row {row.id}: the sender's signature no longer verifies ({err})" if err else None
