"""Audit export: JSON Lines of the records for a trace, a state or a time window, and self-contained bundles.

A bundle is a directory an auditor can take to another machine: the contiguous slice of the chain that holds the
selected records (so every link can be checked) up to the next signed checkpoint, the exact bytes behind the
selected records, the trust material and the gateway's certificate. `verify_bundle` checks it with nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import select

from gateway import audit as rules
from gateway.auditor import ChainCheck, Report, records_in_order
from gateway.envelope import open_envelope
from gateway.errors import GatewayError
from gateway.signatures import verify
from gateway.store import Store, inbound, outbox, routing_tables
from gateway.trust import TrustStore

FORMAT = "tracegate-audit-bundle/1"


@dataclass(frozen=True)
class Selection:
    """Which records: of one trace, touching one state, within a time window (all optional)."""

    trace_id: str | None = None
    state: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class Matcher:
    """Decides record by record, in chain order, whether a record is selected."""

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self._traces_of_state: set[str] = set()

    def __call__(self, record: rules.Record) -> bool:
        """True when `record` is selected."""
        s = self.selection
        at = datetime.fromisoformat(record.at)
        if (s.since and at < s.since) or (s.until and at > s.until):
            return False
        if s.trace_id and record.trace_id != s.trace_id.lower():
            return False
        if s.state:
            return self._touches(record, s.state.upper())
        return True

    def _touches(self, record: rules.Record, state: str) -> bool:
        """The record is about `state`: sent by it, sent to it, or part of a trace it takes part in."""
        data = record.fields()
        parties = {data.get("sender"), data.get("recipient"), data.get("requester"), data.get("party")}
        if state in parties:
            if record.trace_id:
                self._traces_of_state.add(record.trace_id)
            return True
        return record.trace_id is not None and record.trace_id in self._traces_of_state


async def export_lines(store: Store, selection: Selection) -> AsyncIterator[str]:
    """The selected records as JSON lines, in chain order."""
    matcher = Matcher(selection)
    async for record in records_in_order(store):
        if matcher(record):
            yield _line(record)


def _line(record: rules.Record) -> str:
    """One record as a JSON line."""
    return json.dumps({**record.__dict__, "data": record.fields()}, sort_keys=True, ensure_ascii=False)


async def _body(store: Store, record: rules.Record) -> bytes | None:
    """The exact bytes a record's `body_sha256` stands for."""
    data = record.fields()
    async with store.engine.connect() as conn:
        if record.type == rules.RecordType.MESSAGE_IN:
            q = select(inbound.c.body).where(inbound.c.id == data["inbound_id"])
        elif record.type == rules.RecordType.MESSAGE_OUT:
            q = select(outbox.c.body).where(outbox.c.id == data["outbox_id"])
        elif record.type == rules.RecordType.ROUTING_TABLE:
            q = select(routing_tables.c.content).where(routing_tables.c.version == data["version"])
        else:
            return None
        value = (await conn.execute(q)).scalar_one_or_none()
    return value.encode() if isinstance(value, str) else value


async def write_bundle(
    store: Store, selection: Selection, directory: Path, *, trust_dir: Path, gateway_cert: Path
) -> dict[str, Any]:
    """Write a self-contained bundle for `selection`; returns its manifest."""
    matcher = Matcher(selection)
    kept: list[rules.Record] = []
    matched: list[int] = []
    bodies: dict[str, bytes] = {}
    anchored, kept_until = False, 0
    async for record in records_in_order(store):
        selected = matcher(record)
        if selected:
            matched.append(record.seq)
        if not matched:
            continue
        kept.append(record)
        if selected and record.body_sha256:
            body = await _body(store, record)
            if body is not None:
                bodies[record.body_sha256] = body
        if record.type == rules.RecordType.CHECKPOINT and not selected and not anchored:
            anchored, kept_until = True, len(kept)
        elif selected:
            anchored, kept_until = False, len(kept)
    kept = kept[:kept_until]
    manifest = {
        "format": FORMAT,
        "first_seq": kept[0].seq if kept else 0,
        "first_prev_hash": kept[0].prev_hash if kept else rules.GENESIS,
        "last_seq": kept[-1].seq if kept else 0,
        "matched": matched,
        "anchored_by_checkpoint": anchored,
        "selection": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in selection.__dict__.items()},
    }
    await asyncio.to_thread(_write, directory, kept, bodies, manifest, trust_dir, gateway_cert)
    return manifest


def _write(
    directory: Path,
    kept: list[rules.Record],
    bodies: dict[str, bytes],
    manifest: dict[str, Any],
    trust_dir: Path,
    gateway_cert: Path,
) -> None:
    """Lay the bundle out on disk."""
    (directory / "messages").mkdir(parents=True, exist_ok=False)
    for digest, body in bodies.items():
        (directory / "messages" / digest).write_bytes(body)
    with (directory / "records.jsonl").open("w", encoding="utf-8") as out:
        for record in kept:
            out.write(_line(record) + "\n")
    shutil.copytree(trust_dir, directory / "certs", dirs_exist_ok=True)
    shutil.copyfile(gateway_cert, directory / "gateway.pem")
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def verify_bundle(directory: Path) -> Report:
    """Check a bundle on its own: links, checkpoints, the bytes behind each selected record, original signatures."""
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        return Report(0, 0, 0, 0, (f"{directory}: not a tracegate audit bundle",))
    certs = [x509.load_pem_x509_certificate((directory / "gateway.pem").read_bytes())]
    trust = TrustStore.load(directory / "certs")
    check = ChainCheck(certs, first_prev=manifest["first_prev_hash"], first_seq=manifest["first_seq"])
    matched = set(manifest["matched"])
    problems: list[str] = []
    bodies = verified = 0
    with (directory / "records.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            raw = json.loads(line)
            record = rules.Record(**{**raw, "data": rules.canonical(raw["data"])})
            check.feed(record)
            if record.seq in matched and record.body_sha256:
                bodies += 1
                issue, signed = _check_body(directory, record, trust)
                verified += signed
                if issue:
                    problems.append(issue)
    if check.last_seq != manifest["last_seq"]:
        problems.append(f"records end at {check.last_seq}, the manifest says {manifest['last_seq']}")
    all_problems = [str(p) for p in check.problems] + problems
    return Report(check.count, check.checkpoints, bodies, verified, tuple(all_problems))


def _check_body(directory: Path, record: rules.Record, trust: TrustStore) -> tuple[str | None, int]:
    """The bytes behind a selected record: present, matching, and (for an accepted message) still signed."""
    path = directory / "messages" / (record.body_sha256 or "")
    if not path.exists():
        return f"record {record.seq}: the bundle lacks the bytes it vouches for", 0
    body = path.read_bytes()
    if hashlib.sha256(body).hexdigest() != record.body_sha256:
        return f"record {record.seq}: the bundled bytes no longer match its SHA-256", 0
    data = record.fields()
    if record.type != rules.RecordType.MESSAGE_IN or data.get("outcome") != "accepted":
        return None, 0
    try:
        envelope = open_envelope(body, max_bytes=len(body) + 1)
        verify(envelope.root, sender=envelope.sender or "", trust=trust, now=datetime.fromisoformat(record.at))
    except GatewayError as err:
        return f"record {record.seq}: the sender's signature no longer verifies ({err})", 1
    return None, 1
