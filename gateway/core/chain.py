"""The audit trail's rules: hash-chained records, signed checkpoints, and the checks an auditor runs. No I/O.

Each record's hash covers its sequence number, time, type, trace, the SHA-256 of the exact bytes involved,
its data and the previous record's hash, so an edit, a deletion, an insertion or a reordering breaks the chain
at a named record. Checkpoints carry the gateway's signature over a chain head, so truncating the tail or
rewriting the whole chain shows to anyone holding only the gateway's certificate; and, since the gateway signs its
head every `checkpoint_interval_seconds` and when it stops, a record left unsigned for longer than
`checkpoint_slack` (the checkpoints after it deleted) is named too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS = "0" * 64
# How long past the checkpoint interval a record may wait for the checkpoint that signs it: a commit under load, a
# checkpoint postponed once by a database fault, clocks of two gateways on one PostgreSQL a little apart.
CHECKPOINT_GRACE = timedelta(seconds=60)
# A `trace` record holding this key holds every column of the trace's row (and the notices planned and settled);
# older records hold fewer, and only what they hold is checked.
FULL_TRACE_STATE = "current_request_id"


class RecordType:
    """The kinds of audit record."""

    MESSAGE_IN = "message-in"  # a received message and the decision on it
    MESSAGE_OUT = "message-out"  # a gateway message queued for a party
    TRACE = "trace"  # a trace opened or changed state
    DEADLINE = "deadline"  # a deadline notice fired
    ROUTING_TABLE = "routing-table"  # a routing table version first used
    CHECKPOINT = "checkpoint"  # the gateway's signature over the chain head
    RECORD = "record"  # a register record reported, updated or withdrawn (its new version)
    HIT = "hit"  # a trace request's firearm matched a register record
    RECORD_IMPORT = "record-import"  # a state's register migrated from a file (its hash, and the rows' hash)


def canonical(data: dict[str, Any]) -> str:
    """The JSON every hash is taken over: sorted keys, no spaces."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Entry:
    """An audit record before it is placed in the chain."""

    type: str
    at: datetime
    data: dict[str, Any] = field(default_factory=dict)
    trace_id: str | None = None
    body_sha256: str | None = None


@dataclass(frozen=True)
class Record:
    """An audit record in the chain."""

    seq: int
    at: str  # ISO 8601, as hashed
    type: str
    trace_id: str | None
    body_sha256: str | None
    data: str  # canonical JSON, as hashed
    prev_hash: str
    hash: str

    def fields(self) -> dict[str, Any]:
        """The record's data, decoded."""
        decoded: dict[str, Any] = json.loads(self.data)
        return decoded

    def fields_or_empty(self) -> dict[str, Any]:
        """The record's data; `{}` when it is not a JSON object (an edited record: named by its hash elsewhere)."""
        try:
            data = self.fields()
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


def record_hash(
    seq: int, at: str, type_: str, trace_id: str | None, body_sha256: str | None, data: str, prev_hash: str
) -> str:
    """SHA-256 over everything a record says and the hash before it."""
    material = "\x1f".join((str(seq), at, type_, trace_id or "", body_sha256 or "", data, prev_hash))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def chain(entries: Iterable[Entry], head_seq: int, head_hash: str) -> list[Record]:
    """Place entries after the head: numbered and hashed in order."""
    out = []
    seq, prev = head_seq, head_hash
    for e in entries:
        seq += 1
        at = e.at.isoformat()
        data = canonical(e.data)
        digest = record_hash(seq, at, e.type, e.trace_id, e.body_sha256, data, prev)
        out.append(Record(seq, at, e.type, e.trace_id, e.body_sha256, data, prev, digest))
        prev = digest
    return out


def checkpoint_slack(interval_seconds: float) -> timedelta:
    """How long a record may go unsigned: twice the checkpoint interval (one checkpoint may be postponed) plus grace."""
    return 2 * timedelta(seconds=max(interval_seconds, 0.0)) + CHECKPOINT_GRACE


def parse_at(text: str) -> datetime:
    """A time as recorded (ISO 8601), aware (UTC if the text names no zone)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def when(moment: datetime) -> str:
    """A time as an auditor reads it, in UTC to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def span(delta: timedelta) -> str:
    """A duration as an auditor reads it: `11 min`, `6.0 h`, `3.2 days`."""
    seconds = delta.total_seconds()
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
    return f"{seconds / 3600:.1f} h" if seconds < 2 * 86400 else f"{seconds / 86400:.1f} days"


def checkpoint_statement(seq: int, head_hash: str) -> bytes:
    """The bytes the gateway signs for a checkpoint at `seq`."""
    return f"tracegate audit checkpoint v1 seq={seq} head={head_hash}".encode()


@dataclass(frozen=True)
class Problem:
    """The first thing wrong, and where."""

    seq: int
    what: str

    def __str__(self) -> str:
        """How the command prints it."""
        return f"record {self.seq}: {self.what}"


def check_links(records: Iterable[Record], *, first_prev: str = GENESIS, first_seq: int = 1) -> Iterator[Problem]:
    """Every break in numbering, hashing or linkage, in chain order."""
    expected_seq, prev = first_seq, first_prev
    for r in records:
        if r.seq != expected_seq:
            what = "missing before this one" if r.seq > expected_seq else "out of order or inserted"
            yield Problem(r.seq, f"sequence jumps from {expected_seq - 1} to {r.seq}: a record is {what}")
        if r.prev_hash != prev:
            yield Problem(r.seq, "does not link to the record before it (deleted, inserted or reordered)")
        if record_hash(r.seq, r.at, r.type, r.trace_id, r.body_sha256, r.data, r.prev_hash) != r.hash:
            yield Problem(r.seq, "its content no longer matches its hash (edited)")
        expected_seq, prev = r.seq + 1, r.hash
