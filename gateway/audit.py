"""The audit trail's rules: hash-chained records, signed checkpoints, and the checks an auditor runs. No I/O.

Each record's hash covers its sequence number, time, type, trace, the SHA-256 of the exact bytes involved,
its data and the previous record's hash, so an edit, a deletion, an insertion or a reordering breaks the chain
at a named record. Checkpoints carry the gateway's signature over a chain head, so truncating the tail or
rewriting the whole chain shows to anyone holding only the gateway's certificate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

GENESIS = "0" * 64


class RecordType:
    """The kinds of audit record."""

    MESSAGE_IN = "message-in"  # a received message and the decision on it
    MESSAGE_OUT = "message-out"  # a gateway message queued for a party
    TRACE = "trace"  # a trace opened or changed state
    DEADLINE = "deadline"  # a deadline notice fired
    ROUTING_TABLE = "routing-table"  # a routing table version first used
    CHECKPOINT = "checkpoint"  # the gateway's signature over the chain head


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
