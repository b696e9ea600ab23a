"""Replay the recorded traffic through a real pipeline on a throwaway database, and report every divergence.

`replay` reads the audit chain's `message-in` records in chain order (the order the decisions were committed in)
and feeds the exact stored bytes of each message, under its stored transport identity and dedup key, to a real
`Pipeline`: validation, signature and trust checks, sender identity, freshness, routing and the lifecycle all run
again, each with the routing table version recorded for the message and a clock that returns the time the message
was received, so freshness and certificate validity are judged as they were then (trust material, XSDs and limits
are today's settings: a certificate removed or revoked since shows up as a divergence).

The pipeline writes to a fresh SQLite database in a temporary directory, deleted afterwards, and signs its own
messages with a throwaway key: nothing is sent, and the source is only read, with plain SELECTs in batches so that
memory stays bounded however long the chain. A decision is compared on what the replay's own audit chain says
against what the recorded one says (see `Facts`): outcome and refusal code, routing rule, the party a `Delivery`
went to, the trace id, the trace's status and party after the message (from the `trace` record that follows the
`message-in` in the same transaction), and the kinds and recipients of the other messages it caused. The gateway's
messages are not compared byte for byte (they carry fresh ids and another signature). A message whose stored
body no longer matches the SHA-256 recorded for it, or whose routing table is not stored intact, is reported and
not replayed.

Out of scope: deadline notices (the scheduler's work, driven by the wall clock rather than by a message; they do
not change a trace), the chain's own integrity (hashes, links and checkpoints are `verify`'s work: replay takes
the recorded data as it reads), and detail texts of refusals. A divergence early in a trace usually makes the
trace's later messages diverge too: read the first one first.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.app import Parts, build_pipeline, load_makes
from gateway.audit.decisions import Facts, Recorded, differences, read_decision
from gateway.core import chain as rules
from gateway.core.effects import Outcome
from gateway.core.errors import ConfigurationError
from gateway.core.ports import Inbound
from gateway.dev.pki import issue_certificate
from gateway.pipeline.checks import LAPSED, MESSAGE_ID_DIFFERS, NO_USER_ID, WRONG_CONTENT_TYPE
from gateway.pipeline.flow import Pipeline
from gateway.routing.table import RoutingTable, parse_table
from gateway.settings import Settings
from gateway.store import DatabaseError, Store
from gateway.store.imports import replay_import
from gateway.xml.schemas import SchemaSet
from gateway.xml.signatures import Signer
from gateway.xml.trust import TrustStore

Progress = Callable[[int, int], None]
RECORD_BATCH = 1000  # audit records read per query
MESSAGE_BATCH = 100  # stored messages read per query
_IN, _TRACE, _OUT = rules.RecordType.MESSAGE_IN, rules.RecordType.TRACE, rules.RecordType.MESSAGE_OUT
_FOLLOWING = (_TRACE, _OUT, rules.RecordType.RECORD, rules.RecordType.HIT)  # records a message-in's transaction adds


@dataclass(frozen=True)
class Divergence:
    """A message the replay decided differently from the record: its `message-in` record, and how."""

    seq: int
    inbound_id: int
    what: str  # e.g. "recorded refused INCOMPLETE, replay accepted"

    def __str__(self) -> str:
        """How the command prints it."""
        return f"record {self.seq} (inbound {self.inbound_id}): {self.what}"


@dataclass(frozen=True)
class ReplayReport:
    """How many messages were replayed, and every divergence in chain order."""

    replayed: int
    divergences: tuple[Divergence, ...]

    @property
    def ok(self) -> bool:
        """True when the replay decided every message as recorded."""
        return not self.divergences


def _require_file(source: Store) -> None:
    """A SQLite source must exist: connecting would create an empty file."""
    database = source.sqlite_file
    if database and not Path(database).exists():
        raise ConfigurationError(f"{database}: no such database")


async def _extent(source: Store) -> tuple[int, int]:
    """The chain's last seq now (the replay stops there) and how many messages it records up to it."""
    _require_file(source)
    try:
        async with source.reading() as reads:
            upto = await reads.last_seq()
            total = await reads.count_records(_IN, upto=upto)
    except DatabaseError as err:
        where = source.where
        raise ConfigurationError(f"{where}: cannot read the audit trail ({type(err).__name__}: {err})") from err
    return upto, total


async def _transactions(source: Store, upto: int) -> AsyncIterator[Recorded | rules.Record]:
    """Each `message-in` record with the `trace` and `message-out` records that follow it; a register import's
    record as it comes (the import is applied at its place in the chain)."""
    group: list[rules.Record] = []
    async for record in source.chain_records(upto=upto, batch=RECORD_BATCH):
        if record.type == _IN or (group and record.type not in _FOLLOWING):
            found = read_decision(group)
            if found is not None:
                yield found
            group = []
        if record.type == rules.RecordType.RECORD_IMPORT:
            yield record
        if record.type == _IN or group:
            group.append(record)
    found = read_decision(group)
    if found is not None:
        yield found


async def _messages(source: Store, chunk: list[Recorded]) -> list[tuple[Recorded, Any]]:
    """The chunk's records, each with its stored message row (None when the row is missing)."""
    async with source.reading() as reads:
        rows = await reads.inbound_by_id([r.inbound_id for r in chunk])
    return [(r, rows.get(r.inbound_id)) for r in chunk]


async def _recorded(source: Store, upto: int) -> AsyncIterator[tuple[Recorded, Any] | rules.Record]:
    """Every recorded decision up to `upto` with its stored message, bodies read `MESSAGE_BATCH` at a time; a
    register import's record in its place among them."""
    chunk: list[Recorded] = []
    async for found in _transactions(source, upto):
        if isinstance(found, rules.Record):
            for pair in await _messages(source, chunk):
                yield pair
            chunk = []
            yield found
            continue
        chunk.append(found)
        if len(chunk) >= MESSAGE_BATCH:
            for pair in await _messages(source, chunk):
                yield pair
            chunk = []
    if chunk:
        for pair in await _messages(source, chunk):
            yield pair


class _Tables:
    """The routing table versions the source kept, rebuilt on first use; a string says why one is unusable."""

    def __init__(self, source: Store) -> None:
        self._source = source
        self._known: dict[str, RoutingTable | str] = {}

    async def get(self, version: object) -> RoutingTable | str:
        """The table of `version`, or why it cannot be had."""
        if not isinstance(version, str):
            return "no routing table version is recorded for it"
        if version not in self._known:
            self._known[version] = await self._load(version)
        return self._known[version]

    async def _load(self, version: str) -> RoutingTable | str:
        """Read and rebuild one version; it must hash to its own name."""
        async with self._source.reading() as reads:
            content = await reads.table_content(version)
        if content is None:
            return f"routing table {version} is not stored"
        try:
            table = parse_table(json.loads(content), where=f"stored routing table {version}")
        except (ValueError, ConfigurationError) as err:
            return f"stored routing table {version} cannot be read: {err}"
        if table.version != version:
            return f"stored routing table {version} now hashes to {table.version}"
        return table


class _Clock:
    """The replay's clock: the time the message being replayed was received."""

    def __init__(self) -> None:
        self.now = datetime(1970, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        """The current message's reception time."""
        return self.now


def _as_received(row: Any, data: dict[str, Any]) -> Inbound:
    """The message as the transport handed it over, from what is stored. The stored sender is the transport
    identity: the broker-validated user_id wherever the message had one, which it must have had unless it was
    refused for lacking one. The AMQP message_id is the stored Header/MessageId, as the contract asks, except for
    a message refused for a different one; content_type is not stored: a message refused for it gets a value that
    is refused again, every other message none (absent is accepted); one refused because its expiration lapsed
    lapses again."""
    detail = data.get("detail")
    return Inbound(
        body=row.body,
        routing_key=row.sender,
        user_id=None if detail == NO_USER_ID else row.sender,
        message_id=str(uuid.uuid4()) if detail == MESSAGE_ID_DIFFERS else row.message_id,
        content_type="application/octet-stream" if detail == WRONG_CONTENT_TYPE else None,
        lapsed=detail == LAPSED,
    )


def throwaway_signer() -> Signer:
    """A fresh self-signed EC key for the replay's own messages, which are never sent nor compared."""
    key, cert = issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country=None,
        common_name="tracegate replay (throwaway)",
        key_kind="ec",
        not_before=datetime(2000, 1, 1, tzinfo=UTC),
        not_after=datetime(9999, 12, 31, tzinfo=UTC),
    )
    return Signer.from_objects(key, cert)


class _Replayer:
    """A real pipeline on the sandbox database; replays one recorded message at a time."""

    def __init__(self, settings: Settings, sandbox: Store, tables: _Tables) -> None:
        self._settings = settings
        self._sandbox = sandbox
        self._tables = tables
        self._trust = TrustStore.load(settings.trust_dir)
        if not self._trust.states():
            raise ConfigurationError(f"{settings.trust_dir}: no trust material; every signature would be untrusted")
        self._schemas = SchemaSet.load()
        self._makes = load_makes(settings)
        self._signer = throwaway_signer()
        self._clock = _Clock()
        self._pipeline: Pipeline | None = None
        self._seen = 0  # the sandbox chain's last seq read

    def _pipeline_with(self, table: RoutingTable) -> Pipeline:
        """The pipeline, built on first use, with `table` in force."""
        if self._pipeline is None:
            parts = Parts(trust=self._trust, table=table, schemas=self._schemas, signer=self._signer, makes=self._makes)
            self._pipeline = build_pipeline(self._settings, parts, self._sandbox, self._clock)
        self._pipeline.table = table
        return self._pipeline

    async def _unreplayable(self, recorded: Recorded, row: Any) -> str | RoutingTable:
        """Why this message cannot be replayed faithfully, or the routing table to replay it with."""
        if row is None:
            return "the stored message is missing"
        if hashlib.sha256(row.body).hexdigest() != recorded.head.body_sha256:
            return "the stored message no longer matches the SHA-256 recorded for it; not replayed"
        if row.sender != recorded.data.get("sender"):
            return f"the stored sender {row.sender} is not the recorded {recorded.data.get('sender')}; not replayed"
        try:
            self._clock.now = datetime.fromisoformat(recorded.head.at)
        except ValueError:
            return f"the recorded time {recorded.head.at!r} cannot be read; not replayed"
        return await self._tables.get(recorded.data.get("table_version"))

    async def run(self, recorded: Recorded, row: Any) -> Divergence | None:
        """Replay one message; the divergence from the record, if any."""
        table = await self._unreplayable(recorded, row)
        if isinstance(table, str):
            return Divergence(recorded.head.seq, recorded.inbound_id, table)
        pipeline = self._pipeline_with(table)
        message = _as_received(row, recorded.data)
        replayed = await self._replayed(await pipeline.handle(message))
        found = differences(recorded.facts, replayed)
        return Divergence(recorded.head.seq, recorded.inbound_id, "; ".join(found)) if found else None

    async def _replayed(self, outcome: Outcome) -> Facts:
        """The facts of the decision just made, read from the sandbox's own audit chain."""
        async with self._sandbox.reading() as reads:
            records = await reads.records(self._seen, 1_000_000)
        if records:
            self._seen = records[-1].seq
        found = read_decision(records)
        if found is None:  # a repeat: the pipeline answered again and recorded no decision
            return Facts(outcome=outcome.outcome, code=outcome.code, trace_id=outcome.trace_id)
        return found.facts


async def _replay_into(sandbox: Store, source: Store, settings: Settings, progress: Progress | None) -> ReplayReport:
    """Replay the source's chain, as it stands now, into the sandbox."""
    upto, total = await _extent(source)
    replayer = _Replayer(settings, sandbox, _Tables(source))
    divergences: list[Divergence] = []
    done = 0
    if progress is not None:
        progress(0, total)
    async for item in _recorded(source, upto):
        if isinstance(item, rules.Record):
            why = await replay_import(source, sandbox, item.fields_or_empty())
            if why is not None:
                divergences.append(Divergence(item.seq, 0, why))
            continue
        recorded, row = item
        divergence = await replayer.run(recorded, row)
        if divergence is not None:
            divergences.append(divergence)
        done += 1
        if progress is not None:
            progress(done, total)
    return ReplayReport(replayed=done, divergences=tuple(divergences))


async def replay(source: Store, settings: Settings, *, progress: Progress | None = None) -> ReplayReport:
    """Replay every message the source's audit chain records; changes nothing in `source` and sends nothing.

    `progress(done, total)` is called as messages are replayed. The chain is replayed as far as it reached when
    the replay began. Raises `ConfigurationError` when the source or the trust material cannot be read.
    """
    with tempfile.TemporaryDirectory(prefix="tracegate-replay-") as scratch:
        sandbox = Store(f"sqlite+aiosqlite:///{Path(scratch) / 'replay.db'}")
        try:
            await sandbox.start()
            return await _replay_into(sandbox, source, settings, progress)
        finally:
            await sandbox.close()
