"""Walking the audit chain in order: links, checkpoint signatures, checkpoint cadence, expected hashes, and an index
of what each record vouches for (read by `audit_rows` and `audit_deadlines`). No I/O.

Cadence: the gateway signs its head every `checkpoint_interval_seconds` when the head moved, and when it stops; so
every record is signed by a checkpoint within `rules.checkpoint_slack` of its own time. A run of records signed
later than that (or, at the tail, still unsigned that long after) is named: the checkpoints that should have
signed them are missing, as they are when someone rewrote records and deleted the checkpoints after the last one
they kept. An idle gateway writes neither records nor checkpoints, and a stopped one signs its head as it stops,
so neither leaves such a run; a crash does (until the next checkpoint after restart), and is reported.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from cryptography import x509

from gateway.core import chain as rules
from gateway.xml.signatures import verify_statement

_KEYS = {
    rules.RecordType.MESSAGE_IN: "inbound_id",
    rules.RecordType.MESSAGE_OUT: "outbox_id",
    rules.RecordType.ROUTING_TABLE: "version",
}
_REGISTER = (rules.RecordType.RECORD, rules.RecordType.HIT, rules.RecordType.RECORD_IMPORT)
# What records say about a trace's deadline notices, in chain order: ("settle", seq, {"kinds", "at"}),
# ("plan", seq, [[kind, fire_at, due_at], ...]) or ("fire", seq, {"deadline_id", "kind", "due_at"}, at).
Event = tuple[Any, ...]


class Vouch(NamedTuple):
    """What one record says about the row it vouches for."""

    seq: int
    at: str
    trace_id: str | None
    body_sha256: str | None
    data: dict[str, Any]


@dataclass
class ChainCheck:
    """Walks records in order: links, checkpoints and their cadence, and an index of what each record vouches for.

    `slack`: how long a record may go unsigned (None: cadence not checked). `accepted_gaps`: checkpoints ending a
    late run an operator has investigated (a crash): noted, not a problem. `expect`: record numbers with the hash
    they must have, from a copy kept outside the database.
    """

    gateway_certs: list[x509.Certificate]
    first_prev: str = rules.GENESIS
    first_seq: int = 1
    slack: timedelta | None = None
    accepted_gaps: frozenset[int] = frozenset()
    expect: dict[int, str] = field(default_factory=dict)
    problems: list[rules.Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    vouched: dict[tuple[str, str], Vouch] = field(default_factory=dict)
    traces: dict[str, Vouch] = field(default_factory=dict)  # each trace's last record
    register: dict[tuple[str, str, int], Vouch] = field(default_factory=dict)  # (state, reference, version)
    hits: dict[tuple[str, str, str], Vouch] = field(default_factory=dict)  # (state, reference, trace)
    imports: dict[int, Vouch] = field(default_factory=dict)  # register imports, by id
    notices: dict[str, list[Event]] = field(default_factory=dict)  # per trace
    partial_traces: set[str] = field(default_factory=set)  # traces with a record older than FULL_TRACE_STATE
    checkpoints: int = 0
    last_checkpoint_seq: int = 0  # the last checkpoint whose signature verified
    count: int = 0
    next_seq: int = 0
    last_hash: str = ""
    unsigned_from: int = 0  # the first record no checkpoint has signed yet (0: none)
    _unsigned_at: str = ""

    def __post_init__(self) -> None:
        """Start at the chain's beginning (or a bundle's first record)."""
        self.next_seq, self.last_hash = self.first_seq, self.first_prev

    @property
    def last_seq(self) -> int:
        """The number of the last record fed."""
        return self.next_seq - 1

    def feed(self, record: rules.Record) -> None:
        """Check one record in order."""
        self.problems.extend(rules.check_links([record], first_prev=self.last_hash, first_seq=self.next_seq))
        self.next_seq, self.last_hash = record.seq + 1, record.hash
        self.count += 1
        wanted = self.expect.get(record.seq)
        if wanted is not None and wanted.lower() != record.hash:
            self.problems.append(
                rules.Problem(
                    record.seq,
                    f"its hash is {record.hash}, not the {wanted} you supplied from outside the database: "
                    "the chain was rewritten at or before this record",
                )
            )
        data = record.fields_or_empty()
        if record.type == rules.RecordType.CHECKPOINT:
            self._checkpoint(record, data)
            return
        if not self.unsigned_from:
            self.unsigned_from, self._unsigned_at = record.seq, record.at
        key = _KEYS.get(record.type)
        if key is not None:
            vouch = Vouch(record.seq, record.at, record.trace_id, record.body_sha256, data)
            self.vouched[(record.type, str(data.get(key)))] = vouch
        elif record.type == rules.RecordType.TRACE and record.trace_id:
            self._trace(record, data)
        elif record.type in _REGISTER:
            self._register(record, data)
        elif record.type == rules.RecordType.DEADLINE and record.trace_id:
            self.notices.setdefault(record.trace_id, []).append(("fire", record.seq, data, record.at))

    def _register(self, record: rules.Record, data: dict[str, Any]) -> None:
        """What a register record vouches for: a record's version, a hit, an import."""
        vouch = Vouch(record.seq, record.at, record.trace_id, record.body_sha256, data)
        state, reference = str(data.get("state")), str(data.get("reference"))
        if record.type == rules.RecordType.RECORD:
            self.register[(state, reference, int(data.get("version") or 0))] = vouch
        elif record.type == rules.RecordType.HIT:
            self.hits[(state, reference, str(record.trace_id))] = vouch
        else:
            self.imports[int(data.get("import_id") or 0)] = vouch

    def _trace(self, record: rules.Record, data: dict[str, Any]) -> None:
        """A trace's state, and the notices its message settled and planned."""
        trace_id = record.trace_id or ""
        self.traces[trace_id] = Vouch(record.seq, record.at, trace_id, None, data)
        if rules.FULL_TRACE_STATE not in data:
            self.partial_traces.add(trace_id)
            return
        if data.get("settled") or data.get("notices"):
            events = self.notices.setdefault(trace_id, [])
            if data.get("settled"):
                events.append(("settle", record.seq, data["settled"]))
            if data.get("notices"):
                events.append(("plan", record.seq, data["notices"]))

    def _checkpoint(self, record: rules.Record, data: dict[str, Any]) -> None:
        """A checkpoint must sign the record just before it, with a gateway certificate. Either way it ends the run
        of unsigned records for the cadence (a faulty one is named on its own)."""
        self.checkpoints += 1
        self._signed(record)
        if data.get("head_seq") != record.seq - 1 or data.get("head_hash") != record.prev_hash:
            self.problems.append(rules.Problem(record.seq, "checkpoint does not sign the record before it"))
            return
        statement = rules.checkpoint_statement(data["head_seq"], data["head_hash"])
        try:
            signature = base64.b64decode(str(data.get("signature", "")), validate=True)
        except (binascii.Error, ValueError):
            signature = b""
        if any(verify_statement(cert, statement, signature) for cert in self.gateway_certs):
            self.last_checkpoint_seq = record.seq
        else:
            self.problems.append(
                rules.Problem(
                    record.seq,
                    "checkpoint signature does not verify with the gateway's certificate (the chain was rewritten, "
                    "or the certificate supplied is not the gateway's)",
                )
            )

    def _late(self, first: int, last: int, since: datetime, waited: timedelta) -> str:
        """The words for a run of records signed too late."""
        assert self.slack is not None
        return (
            f"records {first} to {last}, from {rules.when(since)}, waited {rules.span(waited)} for a checkpoint, "
            f"more than the {rules.span(self.slack)} allowed"
        )

    def _signed(self, checkpoint: rules.Record) -> None:
        """The run of unsigned records ends here: it must not have waited longer than the slack."""
        first, at, self.unsigned_from = self.unsigned_from, self._unsigned_at, 0
        if not first or self.slack is None:
            return
        try:
            since = rules.parse_at(at)
            waited = rules.parse_at(checkpoint.at) - since
        except ValueError:
            return  # an edited time: its record's hash names it
        if waited <= self.slack:
            return
        what = (
            f"{self._late(first, checkpoint.seq - 1, since, waited)}: the checkpoints that should have signed them "
            "are missing (deleted after those records were rewritten?), or the gateway stopped without its closing "
            "checkpoint (a crash) or could not write one for that long"
        )
        if checkpoint.seq in self.accepted_gaps:
            self.notes.append(f"record {checkpoint.seq}: accepted gap (--accept-gap): {what}")
        else:
            self.problems.append(rules.Problem(checkpoint.seq, what))

    def finish(self, now: datetime | None) -> None:
        """After the last record: hashes supplied for records never seen; the unsigned tail, judged at `now` (None:
        not judged; a bundle must end with a checkpoint instead)."""
        for seq, wanted in sorted(self.expect.items()):
            if not self.first_seq <= seq <= self.last_seq:
                self.problems.append(
                    rules.Problem(
                        seq,
                        f"you supplied its hash ({wanted}), but the chain holds records {self.first_seq} to "
                        f"{self.last_seq} only: the records from {self.last_seq + 1} on were cut",
                    )
                )
        if not self.unsigned_from or self.slack is None or now is None:
            return
        try:
            since = rules.parse_at(self._unsigned_at)
        except ValueError:
            return
        if now - since > self.slack:
            last = f"the last is record {self.last_checkpoint_seq}" if self.last_checkpoint_seq else "there is none"
            self.problems.append(
                rules.Problem(
                    self.unsigned_from,
                    f"unvouched tail: {self._late(self.unsigned_from, self.last_seq, since, now - since)} and no "
                    f"checkpoint signs them ({last}): the checkpoints after them were deleted (the tail rewritten?), "
                    "or the gateway stopped without its closing checkpoint (a crash) and has not run since",
                )
            )
