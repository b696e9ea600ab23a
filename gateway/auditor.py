"""The auditor's side of the store: signed checkpoints, and checking the chain against everything stored.

`verify_store` reads the audit chain in order, checks every link and checkpoint, then holds every stored row
(messages in and out, traces, fired deadlines, routing tables) against the record that vouches for it, and
re-verifies each accepted message's original signature as it stood when received.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import func, select

from gateway import audit as rules
from gateway.envelope import open_envelope
from gateway.errors import GatewayError
from gateway.signatures import Signer, verify, verify_statement
from gateway.store import Store, audit, audit_head, deadlines, inbound, outbox, routing_tables, traces
from gateway.trust import TrustStore

Progress = Callable[[int, int], None]
_INBOUND_FIELDS = (
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
_TRACE_FIELDS = ("status", "requester", "party", "destination", "rule", "table_version", "restrictions", "delay_reason")


def _record(row: Any) -> rules.Record:
    """A chain record from its row."""
    return rules.Record(row.seq, row.at, row.type, row.trace_id, row.body_sha256, row.data, row.prev_hash, row.hash)


async def write_checkpoint(store: Store, signer: Signer, now: datetime) -> int | None:
    """Sign the chain head; returns the record signed, or None when the head is already a checkpoint."""
    async with store.transaction() as tx:
        head = await tx.chain_head()
        if head is None or head[2] == rules.RecordType.CHECKPOINT:
            return None
        seq, digest, _ = head
        signature = signer.sign_statement(rules.checkpoint_statement(seq, digest))
        tx.audit(
            rules.Entry(
                rules.RecordType.CHECKPOINT,
                now,
                {
                    "head_seq": seq,
                    "head_hash": digest,
                    "signature": base64.b64encode(signature).decode(),
                    "certificate_sha256": signer.certificate.fingerprint(hashes.SHA256()).hex(),
                },
            )
        )
    return seq


@dataclass
class ChainCheck:
    """Walks records in order: links, checkpoints, and an index of what each record vouches for."""

    gateway_certs: list[x509.Certificate]
    first_prev: str = rules.GENESIS
    first_seq: int = 1
    problems: list[rules.Problem] = field(default_factory=list)
    vouched: dict[tuple[str, str], tuple[int, dict[str, Any], str | None]] = field(default_factory=dict)
    last_trace: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    checkpoints: int = 0
    last_checkpoint_seq: int = 0
    count: int = 0
    next_seq: int = 0
    last_hash: str = ""

    def __post_init__(self) -> None:
        """Start at the chain's beginning (or a bundle's first record)."""
        self.next_seq, self.last_hash = self.first_seq, self.first_prev

    @property
    def last_seq(self) -> int:
        """The number of the last record fed."""
        return self.next_seq - 1

    def feed(self, record: rules.Record) -> None:
        """Check one record in order."""
        for problem in rules.check_links([record], first_prev=self.last_hash, first_seq=self.next_seq):
            self.problems.append(problem)
        self.next_seq, self.last_hash = record.seq + 1, record.hash
        self.count += 1
        data = record.fields()
        keys = {
            rules.RecordType.MESSAGE_IN: "inbound_id",
            rules.RecordType.MESSAGE_OUT: "outbox_id",
            rules.RecordType.DEADLINE: "deadline_id",
            rules.RecordType.ROUTING_TABLE: "version",
        }
        if record.type in keys:
            self.vouched[(record.type, str(data[keys[record.type]]))] = (record.seq, data, record.body_sha256)
        elif record.type == rules.RecordType.TRACE and record.trace_id:
            self.last_trace[record.trace_id] = (record.seq, data)
        elif record.type == rules.RecordType.CHECKPOINT:
            self._checkpoint(record, data)

    def _checkpoint(self, record: rules.Record, data: dict[str, Any]) -> None:
        """A checkpoint must sign the record just before it, with a gateway certificate."""
        self.checkpoints += 1
        self.last_checkpoint_seq = record.seq
        if data.get("head_seq") != record.seq - 1 or data.get("head_hash") != record.prev_hash:
            self.problems.append(rules.Problem(record.seq, "checkpoint does not sign the record before it"))
            return
        statement = rules.checkpoint_statement(data["head_seq"], data["head_hash"])
        signature = base64.b64decode(data.get("signature", ""))
        if not any(verify_statement(cert, statement, signature) for cert in self.gateway_certs):
            self.problems.append(
                rules.Problem(
                    record.seq,
                    "checkpoint signature does not verify with the gateway's certificate (the chain was rewritten)",
                )
            )


@dataclass(frozen=True)
class Report:
    """What `audit verify` found."""

    records: int
    checkpoints: int
    messages_checked: int
    signatures_checked: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


async def records_in_order(store: Store, batch: int = 5000) -> AsyncIterator[rules.Record]:
    """The chain in order, read in batches."""
    after = 0
    while True:
        async with store.engine.connect() as conn:
            rows = (
                await conn.execute(select(audit).where(audit.c.seq > after).order_by(audit.c.seq).limit(batch))
            ).all()
        if not rows:
            return
        for row in rows:
            yield _record(row)
        after = rows[-1].seq


def _compare(kind: str, key: str, check: ChainCheck, fields: dict[str, Any], sha: str | None) -> str | None:
    """Hold a stored row against the record that vouches for it; a description of the first difference."""
    found = check.vouched.get((kind, key))
    if found is None:
        return f"{kind} row {key} has no audit record (inserted, or the chain's tail was truncated)"
    seq, data, body_sha = found
    for name, value in fields.items():
        if data.get(name) != value:
            return f"record {seq}: the stored {name} of {kind} row {key} differs from what was recorded"
    if sha is not None and sha != body_sha:
        return f"record {seq}: the stored bytes of {kind} row {key} no longer match their SHA-256"
    return None


async def verify_store(
    store: Store,
    trust: TrustStore,
    gateway_certs: list[x509.Certificate],
    *,
    signatures: bool = True,
    progress: Progress | None = None,
) -> Report:
    """Check the chain, its checkpoints, every stored row against its record, and every sender signature."""
    async with store.engine.connect() as conn:
        total = int((await conn.execute(select(func.count()).select_from(audit))).scalar_one())
        head = (await conn.execute(select(audit_head))).first()
    check = ChainCheck(gateway_certs)
    async for record in records_in_order(store):
        check.feed(record)
        if progress and check.count % 1000 == 0:
            progress(check.count, total)
    problems = [str(p) for p in check.problems]
    if head is not None and (head.seq != check.last_seq or head.hash != check.last_hash):
        problems.append(
            f"the chain ends at record {check.last_seq}, but the head says {head.seq}: "
            "records were removed from the tail"
        )
    rows, verified, row_problems = await _check_rows(store, check, trust, signatures)
    problems += row_problems
    if progress:
        progress(total, total)
    return Report(check.count, check.checkpoints, rows, verified, tuple(_ordered(problems)))


def _ordered(problems: list[str]) -> list[str]:
    """Problems naming a record first, lowest record first; the rest after, as found."""

    def key(p: str) -> tuple[int, int]:
        head = p.split(":", 1)[0]
        return (0, int(head.split()[1])) if head.startswith("record ") and head.split()[1].isdigit() else (1, 0)

    return sorted(problems, key=key)


async def _check_rows(
    store: Store, check: ChainCheck, trust: TrustStore, signatures: bool
) -> tuple[int, int, list[str]]:
    """Every inbound, outbox, trace, fired-deadline and routing-table row against its record."""
    problems: list[str] = []
    verified = rows = 0
    async with store.engine.connect() as conn:
        result = await conn.stream(select(inbound).order_by(inbound.c.id))
        async for row in result:
            rows += 1
            fields = {name: getattr(row, name) for name in _INBOUND_FIELDS}
            digest = hashlib.sha256(row.body).hexdigest()
            issue = _compare(rules.RecordType.MESSAGE_IN, str(row.id), check, fields, digest)
            if issue is None and digest != row.sha256:
                issue = f"inbound row {row.id}: its bytes no longer match the SHA-256 stored beside them"
            if issue is None and signatures and row.outcome == "accepted":
                verified += 1
                issue = _sender_signature(row, trust)
            if issue:
                problems.append(issue)
        result = await conn.stream(select(outbox).order_by(outbox.c.id))
        async for row in result:
            rows += 1
            fields = {
                "message_id": row.message_id,
                "recipient": row.recipient,
                "kind": row.kind,
                "inbound_id": row.inbound_id,
            }
            issue = _compare(
                rules.RecordType.MESSAGE_OUT, str(row.id), check, fields, hashlib.sha256(row.body).hexdigest()
            )
            if issue:
                problems.append(issue)
        problems += await _check_state(conn, check)
    return rows, verified, problems


async def _check_state(conn: Any, check: ChainCheck) -> list[str]:
    """Traces, fired deadlines and routing tables against their records."""
    problems = []
    for row in (await conn.execute(select(traces))).all():
        last = check.last_trace.get(row.trace_id)
        if last is None:
            problems.append(f"trace {row.trace_id} has no audit record")
            continue
        seq, data = last
        for name in _TRACE_FIELDS:
            if data.get(name) != getattr(row, name):
                problems.append(f"record {seq}: the trace's stored {name} differs from its last recorded state")
                break
    for row in (await conn.execute(select(deadlines).where(deadlines.c.status == "fired"))).all():
        if (rules.RecordType.DEADLINE, str(row.id)) not in check.vouched:
            problems.append(f"deadline row {row.id} is marked fired but no audit record says so")
    for row in (await conn.execute(select(routing_tables))).all():
        issue = _compare(
            rules.RecordType.ROUTING_TABLE, row.version, check, {}, hashlib.sha256(row.content.encode()).hexdigest()
        )
        if issue:
            problems.append(issue)
    return problems


def _sender_signature(row: Any, trust: TrustStore) -> str | None:
    """Re-verify an accepted message's original signature as of its reception."""
    received = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=UTC)
    try:
        envelope = open_envelope(row.body, max_bytes=len(row.body) + 1)
        verify(envelope.root, sender=envelope.sender or "", trust=trust, now=received)
    except GatewayError as err:
        return f"inbound row {row.id}: the sender's signature no longer verifies ({err})"
    return None


def dump(record: rules.Record) -> str:
    """One JSON line for a record."""
    return json.dumps({**record.__dict__, "data": record.fields()}, sort_keys=True)
