"""Audit export: JSON Lines of the records for a trace, a state or a time window, and self-contained bundles.

A bundle is a directory an auditor can take to another machine: the contiguous slice of the chain that holds the
selected records (so every link can be checked) up to the next signed checkpoint, the exact bytes behind the
selected records, and, for reference, copies of the trust material and the gateway's certificate. `verify_bundle`
checks it against a gateway certificate and trust material the auditor obtained outside the bundle: the copies
inside prove nothing, since whoever altered the bundle could have replaced them (and re-signed its checkpoints).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from gateway.audit.verify import ChainCheck, Report, ordered, records_in_order
from gateway.core import chain as rules
from gateway.store import Store
from gateway.xml.signatures import reverify
from gateway.xml.trust import TrustStore

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
    async with store.reading() as reads:
        if record.type == rules.RecordType.MESSAGE_IN:
            return await reads.inbound_body(data["inbound_id"])
        if record.type == rules.RecordType.MESSAGE_OUT:
            return await reads.outbox_body(data["outbox_id"])
        if record.type == rules.RecordType.ROUTING_TABLE:
            content = await reads.table_content(data["version"])
            return content.encode() if content is not None else None
    return None


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


def verify_bundle(
    directory: Path,
    gateway_certs: Sequence[x509.Certificate],
    trust: TrustStore | None,
    *,
    checkpoint_interval: float | None = None,
    expect: Mapping[int, str] | None = None,
) -> Report:
    """Check a bundle against `gateway_certs` and `trust` obtained outside it (None: the senders' signatures are not
    verified, and the report says so): links, checkpoint signatures and cadence, a checkpoint signing its last
    record, the bytes behind each record and the original signatures. Its own copies are ignored."""
    if not gateway_certs:
        return Report(0, 0, 0, 0, ("no gateway certificate supplied: a bundle's checkpoints prove nothing by itself",))
    try:
        manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return Report(0, 0, 0, 0, (f"{directory}: not a tracegate audit bundle",))
    slack = rules.checkpoint_slack(checkpoint_interval) if checkpoint_interval is not None else None
    first_seq = int(manifest.get("first_seq") or 1)
    prev = str(manifest.get("first_prev_hash") or rules.GENESIS)
    check = ChainCheck(
        list(gateway_certs), first_prev=prev, first_seq=first_seq, slack=slack, expect=dict(expect or {})
    )
    matched = set(manifest.get("matched") or ())
    problems = _inner_certificate(directory, gateway_certs)
    notes = [] if trust is not None else ["the senders' original signatures were not verified (no trust material)"]
    bodies = verified = 0
    with (directory / "records.jsonl").open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                raw = json.loads(line)
                record = rules.Record(**{**raw, "data": rules.canonical(raw["data"])})
            except (KeyError, TypeError, ValueError):
                problems.append(f"records.jsonl line {number} is not a record")
                continue
            check.feed(record)
            digest = record.body_sha256
            if digest and (record.seq in matched or (directory / "messages" / Path(digest).name).exists()):
                bodies += 1
                issue, signed = _check_body(directory, record, trust)
                verified += signed
                if issue:
                    problems.append(issue)
    check.finish(None)
    if check.last_seq != manifest.get("last_seq"):
        problems.append(f"records end at {check.last_seq}, the manifest says {manifest.get('last_seq')}")
    if check.unsigned_from:
        problems.append(
            f"record {check.unsigned_from}: records {check.unsigned_from} to {check.last_seq} come after the bundle's "
            "last checkpoint: no gateway signature vouches for them (export again once a checkpoint signs them)"
        )
    all_problems = [str(p) for p in check.problems] + problems
    return Report(
        check.count,
        check.checkpoints,
        bodies,
        verified,
        tuple(ordered(all_problems)),
        notes=tuple(check.notes + notes),
        head=(check.last_seq, check.last_hash) if check.count else None,
        last_checkpoint=check.last_checkpoint_seq,
    )


def _inner_certificate(directory: Path, gateway_certs: Sequence[x509.Certificate]) -> list[str]:
    """The bundle's own copy of the gateway's certificate must be one of those supplied (it is never used)."""
    path = directory / "gateway.pem"
    if not path.exists():
        return []
    try:
        inner = x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256())
    except ValueError:
        inner = b""
    if inner in {c.fingerprint(hashes.SHA256()) for c in gateway_certs}:
        return []
    return [
        "the bundle's gateway.pem is not the gateway certificate you supplied: the bundle was altered or comes from "
        "another gateway (its copy is ignored; checkpoints are verified against yours only)"
    ]


def _check_body(directory: Path, record: rules.Record, trust: TrustStore | None) -> tuple[str | None, int]:
    """The bytes behind a selected record: present, matching, and (for an accepted message) still signed."""
    digest = record.body_sha256 or ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return f"record {record.seq}: its SHA-256 is not one", 0
    path = directory / "messages" / digest
    if not path.exists():
        return f"record {record.seq}: the bundle lacks the bytes it vouches for", 0
    body = path.read_bytes()
    if hashlib.sha256(body).hexdigest() != record.body_sha256:
        return f"record {record.seq}: the bundled bytes no longer match its SHA-256", 0
    data = record.fields()
    if trust is None or record.type != rules.RecordType.MESSAGE_IN or data.get("outcome") != "accepted":
        return None, 0
    err = reverify(body, trust, rules.parse_at(record.at))
    return (f"record {record.seq}: the sender's signature no longer verifies ({err})" if err else None), 1
