"""The one place the stages run in sequence: parse, validate, verify, authorize, decide, commit.

A refused message takes the same path to the commit, with a `Rejection` in the outbox: the sender always hears.

Group commit: the checks that need no database run as each message arrives; then the message waits for the
committer, which decides every waiting message in arrival order inside one transaction and commits them together.
Under load a transaction carries many messages (its statements and its commit shared by all); alone, a message
commits at once. Each message is acknowledged only after the commit that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import structlog
from lxml import etree

from gateway import compose
from gateway.deadlines import DeadlinePolicy
from gateway.decide import decide
from gateway.envelope import Envelope, open_envelope
from gateway.errors import ErrorCode, Refused, TransientError
from gateway.messages import read_header
from gateway.model import Header
from gateway.outbox import seal
from gateway.ports import Inbound
from gateway.routing.table import RoutingTable
from gateway.schemas import GATEWAY_MESSAGE_TYPES, NPC_MESSAGE_TYPES, SchemaSet
from gateway.signatures import Signer, verify
from gateway.store import Effects, InboundRecord, OutboxMessage, Store, Transaction
from gateway.trust import TrustStore

log = structlog.get_logger("tracegate.pipeline")
_R = TypeVar("_R")
_OWN = threading.local()  # a parser per thread, for documents the gateway itself composed
# The loop turns a committed batch needs before its acks and publishes are on the socket: the handlers and the
# relay's tasks resume (1) and queue their frames for the AMQP client's writer task (2), which writes them (3).
# With one turn, the frames waited for the whole of the next batch's deciding (measured: the Delivery reached
# its recipient 11-13 ms after the commit at saturation, 7 ms with three turns; p50 at 200 msgs/s 14-17 ms
# against 9-11 ms, in runs alternated to cancel the machine's drift).
_TURNS_AFTER_COMMIT = 3
# Below the relayable size by this much, a message's answers are not measured (restriction and reason texts, at
# most 4,000 characters each by the XSDs, are all a Delivery adds beyond its payload and fixed elements).
_UNMEASURED_MARGIN = 40_000
# The refusal of a message without user_id where each state has its own broker user (replay recognises it).
NO_USER_ID = "this switch gives each state its own broker user: publish with the AMQP user_id property set"
# The contract's transport rules (section 2), where the publisher set the property at all.
XML_TYPE = "application/xml"
WRONG_CONTENT_TYPE = "the AMQP content_type is not application/xml, as the contract requires (section 2)"
MESSAGE_ID_DIFFERS = "the AMQP message_id differs from Header/MessageId; the contract requires them equal (section 2)"
# A message whose AMQP expiration lapsed in the gateway's queue: its sender is told, once its signature is checked.
LAPSED = (
    "the AMQP expiration of this message lapsed while it waited in the gateway's queue, so it was not processed "
    "(the contract gives expiration no meaning: publish without one); send it again with a new MessageId"
)


def _own_parser() -> etree.XMLParser:
    """This thread's parser (an lxml parser serves one thread at a time)."""
    parser: etree.XMLParser | None = getattr(_OWN, "parser", None)
    if parser is None:
        parser = _OWN.parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return parser


@dataclass(frozen=True)
class Outcome:
    """What became of one inbound message (for logs, the demo and tests)."""

    outcome: str  # accepted | refused | duplicate
    kind: str
    message_id: str | None
    sender: str
    code: str | None = None
    detail: str | None = None
    trace_id: str | None = None
    routed_to: str | None = None
    rule: str | None = None


@dataclass(frozen=True)
class Verified:
    """A message that passed every check that needs no database: its signed content and header."""

    root: etree._Element
    header: Header
    kind: str


@dataclass
class _Waiting:
    """A checked message waiting for the committer."""

    message: Inbound
    envelope: Envelope | None
    checked: Verified | Refused
    key: str
    digest: str
    now: datetime
    done: asyncio.Future[Outcome]

    @property
    def holds_slot(self) -> bool:
        """Whether the message occupies its sender's duplicate slot (only a verified one does)."""
        return isinstance(self.checked, Verified)

    @property
    def trace_ids(self) -> tuple[str, ...]:
        """The traces deciding it may read: the one it names, and the one it would open."""
        if isinstance(self.checked, Verified):
            header = self.checked.header
            return tuple(t for t in (header.trace_id, header.message_id) if t)
        return ()


UNVERIFIED_PREFIX = "unverified:"


def _slot(checked: Verified | Refused) -> str:
    """The duplicate slot a message takes: its verified sender's MessageId (UUIDs compare case-insensitively).

    A message refused before its signature, sender, connection and freshness were all verified takes a slot of its
    own, which nothing will ever repeat: it is kept as evidence and audited, but it cannot be filed under a
    state's (sender, MessageId) and so block that state's genuine message with the same MessageId (a forger's
    publish under another state's routing key, or the state's own retry after fixing its signing fault).
    """
    if isinstance(checked, Verified):
        return checked.header.message_id.lower()[:80]
    return f"{UNVERIFIED_PREFIX}{uuid.uuid4()}"


@dataclass
class Pipeline:
    """Runs every inbound message through the stages and commits its effects in one transaction."""

    schemas: SchemaSet
    trust: TrustStore
    signer: Signer
    table: RoutingTable
    store: Store
    policy: DeadlinePolicy
    clock: Callable[[], datetime]
    max_message_bytes: int = 1_048_576
    max_age_seconds: float = 72 * 3600
    max_skew_seconds: float = 300
    on_commit: Callable[[], None] = lambda: None
    require_user_id: bool = False
    max_batch: int = 64
    crypto: Executor | None = None  # threads for parsing and XML-DSig; None runs them inline
    signing: Executor | None = None  # a thread of its own for the committer's signing (never queued behind checks)
    large: Executor | None = None  # with no crypto threads: where a message over `inline_check_bytes` is checked
    inline_check_bytes: int = 65_536
    _known_tables: set[str] = field(default_factory=set)
    _waiting: list[_Waiting] = field(default_factory=list)
    _committer: asyncio.Task[None] | None = None
    _unsigned: list[tuple[list[OutboxMessage], list[tuple[str, str, bytes | etree._Element]]]] = field(
        default_factory=list
    )

    async def handle(self, message: Inbound) -> Outcome:
        """Process one message; raises only for faults a retry may cure (`TransientError`)."""
        started = time.perf_counter()
        now = self.clock()
        digest = hashlib.sha256(message.body).hexdigest()
        if self.crypto is None and self.large is not None and len(message.body) > self.inline_check_bytes:
            # A large message's checks cost in proportion to its size (the parser's caps see to that), up to
            # milliseconds for 1 MiB: they run beside the loop, so no one sender's large messages hold up others'.
            loop = asyncio.get_running_loop()
            envelope, checked = await loop.run_in_executor(self.large, self._open_and_check, message, now)
        else:
            envelope, checked = await self._off_loop(self._open_and_check, message, now)
        key = _slot(checked)
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        waiting = _Waiting(message, envelope, checked, key, digest, now, done)
        self._waiting.append(waiting)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_waiting(), name="group-commit")
        outcome = await waiting.done
        self.on_commit()
        log.info("message", ms=round((time.perf_counter() - started) * 1000, 2), **outcome.__dict__)
        return outcome

    async def _commit_waiting(self) -> None:
        """Commit the waiting messages, up to `max_batch` per transaction, until none wait."""
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: len(batch)]
            await self._commit_batch(batch)
            # Let the committed messages be acknowledged and relayed before deciding the next batch (deciding runs
            # on the loop until its first real wait; the next batch gathers whatever arrives meanwhile).
            for _ in range(_TURNS_AFTER_COMMIT):
                await asyncio.sleep(0)

    async def _commit_batch(self, batch: list[_Waiting]) -> None:
        """Decide and commit `batch` in one transaction; every message learns its outcome or the fault.

        A database fault fails them all (nothing was committed; each is retried). Any other fault is isolated:
        each message is committed again on its own, so one message that cannot be processed holds up no other.
        """
        started = time.perf_counter()
        self._unsigned = []
        try:
            async with self.store.transaction() as tx:
                await tx.prefetch(
                    [(w.message.transport_sender, w.key) for w in batch if w.holds_slot],
                    (t for w in batch for t in w.trace_ids),
                )
                if self.table.version not in self._known_tables:  # kept once, so audits can replay with it
                    await tx.remember_table(self.table.version, self.table.canonical(), batch[0].now)
                outcomes = [await self._decide_one(tx, w) for w in batch]
        except TransientError as err:
            for w in batch:
                if not w.done.done():
                    w.done.set_exception(err)
            return
        except Exception as err:
            if len(batch) == 1:
                if not batch[0].done.done():
                    batch[0].done.set_exception(err)
                return
            log.warning("a batch failed; committing its messages one by one", size=len(batch), error=repr(err))
            for w in batch:
                await self._commit_batch([w])
            return
        log.debug("batch committed", size=len(batch), ms=round((time.perf_counter() - started) * 1000, 2))
        self._known_tables.add(self.table.version)
        for w, outcome in zip(batch, outcomes, strict=True):
            if not w.done.done():
                w.done.set_result(outcome)

    async def _decide_one(self, tx: Transaction, w: _Waiting) -> Outcome:
        """One message of a batch: answered again if it is a repeat, otherwise decided and recorded."""
        earlier = await tx.find_inbound(w.message.transport_sender, w.key) if w.holds_slot else None
        if earlier is not None:
            return await self._answer_again(tx, earlier, w.message, w.envelope, w.now)
        return await self._commit(tx, w.checked, w.envelope, w.message, w.key, w.digest, w.now)

    async def give_up(self, message: Inbound, error: BaseException) -> None:
        """After the last attempt failed unexpectedly: record it and tell the sender; the broker keeps the message.

        The record gets a key of its own, so the message, retried later from the dead-letter queue, is decided
        afresh rather than answered as a duplicate.
        """
        now = self.clock()
        envelope = None
        with contextlib.suppress(Refused):
            envelope = open_envelope(message.body, max_bytes=self.max_message_bytes)
        refusal = Refused(
            ErrorCode.PROCESSING_FAILED,
            f"the gateway could not process this message after {message.attempt} attempts "
            f"({type(error).__name__}); it is held for an administrator",
        )
        key = f"failed:{uuid.uuid4()}"
        kind = envelope.kind if envelope else "unreadable"
        async with self.store.transaction() as tx:
            await self._reject(tx, refusal, kind, envelope, message, key, hashlib.sha256(message.body).hexdigest(), now)
        self.on_commit()
        log.error("message given up", kind=kind, sender=message.transport_sender, attempts=message.attempt)

    async def _off_loop(self, work: Callable[..., _R], *args: Any) -> _R:
        """Run CPU-bound work (parsing, XML-DSig) on the crypto threads if there are any; lxml and xmlsec release
        the GIL there, so it runs beside the event loop's own work on another core."""
        if self.crypto is None:
            return work(*args)
        return await asyncio.get_running_loop().run_in_executor(self.crypto, work, *args)

    def _open_and_check(self, message: Inbound, now: datetime) -> tuple[Envelope | None, Verified | Refused]:
        """The envelope (if readable) and the verdict of every check that needs no database."""
        envelope: Envelope | None = None
        try:
            envelope = open_envelope(message.body, max_bytes=self.max_message_bytes)
            return envelope, self._check(envelope, message, now)
        except Refused as refusal:
            return envelope, refusal

    def _seal_all(self, messages: Sequence[tuple[str, str, bytes | etree._Element]]) -> list[OutboxMessage]:
        """Sign and address gateway messages. A message handed over as bytes is parsed afresh here: lxml trees are
        modified only by the thread that made them, so a signing thread never touches a tree the event loop built
        (on the loop itself, the trees are signed as they are)."""
        return [
            self._seal(kind, recipient, document if isinstance(document, etree._Element) else self._reparse(document))
            for kind, recipient, document in messages
        ]

    @staticmethod
    def _reparse(document: bytes) -> etree._Element:
        """A document the gateway composed, parsed on this thread."""
        return etree.fromstring(document, _own_parser())

    def _to_sign(self, tx: Transaction, messages: Sequence[tuple[str, str, etree._Element]]) -> list[OutboxMessage]:
        """A list the signed messages will fill before the transaction writes it: a batch is signed at once."""
        signed: list[OutboxMessage] = []
        on_loop = self.signing is None and self.crypto is None  # signed here, on this thread: no copy needed
        documents = [(kind, recipient, root if on_loop else etree.tostring(root)) for kind, recipient, root in messages]
        self._unsigned.append((signed, documents))
        tx.before_flush = self._sign_waiting
        return signed

    async def _sign_waiting(self) -> None:
        """Sign every message decided since the last flush, split across the crypto threads."""
        jobs, self._unsigned = self._unsigned, []
        flat = [m for _, messages in jobs for m in messages]
        if not flat:
            return
        if self.signing is not None:
            signed = iter(await asyncio.get_running_loop().run_in_executor(self.signing, self._seal_all, flat))
        else:
            signed = iter(await self._off_loop(self._seal_all, flat))
        for target, messages in jobs:
            target.extend(next(signed) for _ in messages)

    def _check(self, envelope: Envelope, message: Inbound, now: datetime) -> Verified:
        """Schema, message type, signature and trust, sender identity, freshness; no database."""
        self.schemas.validate(envelope.root)
        if envelope.kind in GATEWAY_MESSAGE_TYPES:
            raise Refused(ErrorCode.NOT_AUTHORIZED, f"only the gateway sends {envelope.kind} messages")
        if envelope.kind not in NPC_MESSAGE_TYPES:
            raise Refused(ErrorCode.SCHEMA_INVALID, f"{envelope.kind} is not a message of the contract")
        if self.require_user_id and not message.user_id:
            raise Refused(ErrorCode.SENDER_MISMATCH, NO_USER_ID)
        if message.content_type and message.content_type.split(";")[0].strip().lower() != XML_TYPE:
            raise Refused(ErrorCode.MALFORMED_XML, WRONG_CONTENT_TYPE)
        if message.message_id and (envelope.message_id or "").lower() != message.message_id.lower():
            raise Refused(ErrorCode.SCHEMA_INVALID, MESSAGE_ID_DIFFERS)
        claimed = envelope.sender or ""
        signed = verify(envelope.root, sender=claimed, trust=self.trust, now=now)
        header = read_header(signed.root)
        if header.sender != message.transport_sender:
            raise Refused(
                ErrorCode.SENDER_MISMATCH,
                f"Header/Sender is {header.sender} but the message came in as {message.transport_sender}",
            )
        if self.table.entry(header.sender) is None:
            raise Refused(ErrorCode.NOT_AUTHORIZED, f"{header.sender} is not connected to the switch")
        if message.lapsed:
            raise Refused(ErrorCode.STALE_MESSAGE, LAPSED)
        age = (now - header.created_at).total_seconds()
        if age > self.max_age_seconds:
            raise Refused(
                ErrorCode.STALE_MESSAGE,
                f"CreatedAt is {age / 3600:.1f} hours old; the limit is {self.max_age_seconds / 3600:.0f} hours",
            )
        if -age > self.max_skew_seconds:
            raise Refused(ErrorCode.STALE_MESSAGE, f"CreatedAt is {-age:.0f} s in the future")
        return Verified(root=signed.root, header=header, kind=envelope.kind)

    async def _commit(
        self,
        tx: Transaction,
        checked: Verified | Refused,
        envelope: Envelope | None,
        message: Inbound,
        key: str,
        digest: str,
        now: datetime,
    ) -> Outcome:
        """Decide and store the message, its decision and every message it causes, together."""
        if isinstance(checked, Verified):
            try:
                decision = await decide(
                    tx,
                    checked.root,
                    checked.header,
                    checked.kind,
                    message.body,
                    table=self.table,
                    policy=self.policy,
                    now=now,
                )
                self._check_fits(decision.messages, checked.kind, len(message.body))
            except Refused as refusal:
                checked = refusal
        kind = envelope.kind if envelope else "unreadable"
        message_id = envelope.message_id if envelope else None
        sender = message.transport_sender
        if isinstance(checked, Refused):
            return await self._reject(tx, checked, kind, envelope, message, key, digest, now)
        record = InboundRecord(
            sender,
            key,
            message_id,
            kind,
            decision.trace.trace_id if decision.trace else None,
            now,
            message.body,
            digest,
            "accepted",
            rule=decision.rule,
            table_version=self.table.version,
        )
        outgoing = self._to_sign(tx, decision.messages)
        tx.record(
            Effects(
                record,
                trace=decision.trace,
                new_trace=decision.new_trace,
                settle=frozenset(str(k) for k in decision.settle),
                plan=tuple(decision.plan),
                outgoing=outgoing,
            )
        )
        return Outcome(
            "accepted",
            kind,
            message_id,
            sender,
            trace_id=record.trace_id,
            routed_to=decision.routed_to,
            rule=decision.rule,
        )

    async def _reject(
        self,
        tx: Transaction,
        refusal: Refused,
        kind: str,
        envelope: Envelope | None,
        message: Inbound,
        key: str,
        digest: str,
        now: datetime,
    ) -> Outcome:
        """Record a refusal (with the trace it named, if readable) and queue the signed `Rejection`."""
        sender = message.transport_sender
        message_id = envelope.message_id if envelope else None
        named_trace = (envelope.trace_id or "").lower() or None if envelope else None
        record = InboundRecord(
            sender,
            key,
            message_id,
            kind[:64],
            named_trace,
            now,
            message.body,
            digest,
            "refused",
            code=refusal.code.value,
            detail=refusal.detail,
            table_version=self.table.version,
        )
        outgoing: list[OutboxMessage] = []
        if self.require_user_id and not message.user_id:
            # Its routing key is only a claim: answering there would let anyone fill another state's queue.
            log.warning("refused, unanswered: no user_id", routing_key=message.routing_key[:16], code=refusal.code)
        elif self.table.entry(sender) is not None:
            root = compose.rejection(now=now, rejected_id=message_id, code=refusal.code.value, detail=refusal.detail)
            outgoing = self._to_sign(tx, [("Rejection", sender, root)])
        tx.record(Effects(record, outgoing=outgoing))
        return Outcome("refused", kind, message_id, sender, code=refusal.code.value, detail=refusal.detail)

    async def _answer_again(
        self, tx: Transaction, earlier: object, message: Inbound, envelope: Envelope | None, now: datetime
    ) -> Outcome:
        """A repeated (sender, MessageId): no second effect; the first answer is sent again."""
        row = earlier._mapping  # type: ignore[attr-defined]
        answers = await tx.answers_to(row["id"], message.transport_sender)
        await tx.add_outbox(answers, inbound_id=None, now=now)
        return Outcome(
            "duplicate",
            row["kind"],
            row["message_id"],
            message.transport_sender,
            code=row["code"],
            trace_id=row["trace_id"],
            detail=f"repeat of a message first {row['outcome']}",
        )

    def _check_fits(self, messages: Sequence[tuple[str, str, etree._Element]], kind: str, size: int) -> None:
        """TOO_LARGE when a message this one causes would be over the cap once signed: nothing the gateway sends
        exceeds what the contract lets a national system refuse (a Delivery carries the message in base64). Only a
        message near the relayable size is measured: below it, every answer fits with room to spare (a Delivery's
        other elements are bounded by the XSDs, a StatusReport by its page size)."""
        if size <= compose.relayable_bytes(self.max_message_bytes) - _UNMEASURED_MARGIN:
            return
        for out_kind, _, root in messages:
            bound = compose.signed_size_bound(root)
            if bound <= self.max_message_bytes:
                continue
            if out_kind == "Delivery":
                raise Refused(
                    ErrorCode.TOO_LARGE,
                    f"the {kind} is {size} bytes; relayed in base64 its Delivery would be about {bound} bytes, over "
                    f"the {self.max_message_bytes}-byte limit on every message; the largest {kind} that can be "
                    f"relayed is about {compose.relayable_bytes(self.max_message_bytes)} bytes",
                )
            raise Refused(
                ErrorCode.TOO_LARGE,
                f"the {out_kind} answering it would be about {bound} bytes, over the {self.max_message_bytes}-byte "
                "limit on every message" + ("; ask with a smaller Limit" if out_kind == "StatusReport" else ""),
            )

    def _seal(self, kind: str, recipient: str, root: etree._Element) -> OutboxMessage:
        """Sign a gateway message and address it."""
        return seal(self.signer, self.table, kind, recipient, root, max_bytes=self.max_message_bytes)
