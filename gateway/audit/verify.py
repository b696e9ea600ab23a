"""The auditor's side of the store: signed checkpoints, and checking the chain against everything stored.

`verify_store` reads the audit chain in order and checks every link, every checkpoint's signature and the
checkpoints' cadence (`audit_chain`), and the head row; then holds every stored row (messages in and out, traces,
deadline notices, routing tables) against the record that vouches for it and every record against its row
(`audit_rows`), re-verifying each accepted message's original signature as it stood when received.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.audit.stored_rows import check_rows
from gateway.audit.walk import ChainCheck
from gateway.core import chain as rules
from gateway.settings import Settings
from gateway.store import Store
from gateway.xml.signatures import Signer
from gateway.xml.trust import TrustStore

__all__ = [
    "ChainCheck",
    "Report",
    "dump",
    "ordered",
    "records_in_order",
    "verify_store",
    "write_checkpoint",
]

Progress = Callable[[int, int], None]


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


@dataclass(frozen=True)
class Report:
    """What `audit verify` found."""

    records: int
    checkpoints: int
    messages_checked: int
    signatures_checked: int
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()  # said, but not faults (accepted gaps; what was not verified)
    head: tuple[int, str] | None = None  # the last record's number and hash
    last_checkpoint: int = 0  # the last checkpoint whose signature verified

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return not self.problems


async def records_in_order(store: Store, batch: int = 5000) -> AsyncIterator[rules.Record]:
    """The chain in order, read in batches (each in a short read of its own)."""
    async for record in store.chain_records(batch=batch):
        yield record


async def verify_store(
    store: Store,
    trust: TrustStore,
    gateway_certs: list[x509.Certificate],
    *,
    signatures: bool = True,
    progress: Progress | None = None,
    checkpoint_interval: float | None = Settings.checkpoint_interval_seconds,
    now: datetime | None = None,
    expect: Mapping[int, str] | None = None,
    accepted_gaps: Collection[int] = (),
) -> Report:
    """Check the chain, its checkpoints and their cadence, every stored row against its record and back, and every
    sender signature.

    `checkpoint_interval`: the gateway's (None: cadence not checked); the unsigned tail is judged at `now` (default:
    the wall clock). `expect`: record numbers with the hash each must have, kept outside the database.
    """
    slack = rules.checkpoint_slack(checkpoint_interval) if checkpoint_interval is not None else None
    check = ChainCheck(gateway_certs, slack=slack, accepted_gaps=frozenset(accepted_gaps), expect=dict(expect or {}))
    now = now or datetime.now(UTC)
    async with store.snapshot() as reads:
        total = await reads.count_records()
        head = await reads.head()
        async for record in reads.chain():
            check.feed(record)
            if progress and check.count % 1000 == 0:
                progress(check.count, total)
        check.finish(now)
        problems = [str(p) for p in check.problems]
        problems += _head_problems(head, check)
        rows, verified, row_problems = await check_rows(reads, check, trust, signatures)
    problems += row_problems
    if progress:
        progress(total, total)
    return Report(
        check.count,
        check.checkpoints,
        rows,
        verified,
        tuple(ordered(problems)),
        notes=tuple(check.notes),
        head=(check.last_seq, check.last_hash) if check.count else None,
        last_checkpoint=check.last_checkpoint_seq,
    )


def _head_problems(head: Any, check: ChainCheck) -> list[str]:
    """The head row must name the chain's last record."""
    if head is None:
        return ["the chain's head row is missing, but the chain holds records"] if check.count else []
    if head.seq > check.last_seq:
        return [
            f"the chain ends at record {check.last_seq}, but the head says {head.seq}: "
            "records were removed from the tail"
        ]
    if head.seq < check.last_seq:
        return [f"the head says the chain ends at record {head.seq}, but it runs on to {check.last_seq}"]
    if head.hash != check.last_hash:
        return [f"record {check.last_seq}: its hash is not the one the head holds (the tail was rewritten)"]
    return []


def ordered(problems: list[str]) -> list[str]:
    """Problems naming a record first, lowest record first; the rest after, as found."""

    def key(p: str) -> tuple[int, int]:
        head = p.split(":", 1)[0]
        return (0, int(head.split()[1])) if head.startswith("record ") and head.split()[1].isdigit() else (1, 0)

    return sorted(problems, key=key)


def dump(record: rules.Record) -> str:
    """One JSON line for a record."""
    return json.dumps({**record.__dict__, "data": record.fields()}, sort_keys=True)
