"""The one path of an inbound message: checks (`checks`), then the group committer (`committer`): load, decide,
sign, commit; acknowledged by its handler once its outcome is known, its answers handed to the relay.

A refused message takes the same path to the commit, with a `Rejection` in the outbox: the sender always hears.
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

from gateway.core.deadlines import DeadlinePolicy
from gateway.core.effects import OutboxMessage, Outcome
from gateway.core.errors import ErrorCode, Refused
from gateway.core.ports import Inbound
from gateway.core.requests import Unsigned
from gateway.core.snapshot import Arrival, Rules, Verified
from gateway.outbox.seal import seal
from gateway.pipeline.checks import Limits, open_and_check, slot_of
from gateway.pipeline.committer import GroupCommitter, UnitsOfWork
from gateway.records.matching import Makes
from gateway.routing.table import RoutingTable
from gateway.xml.envelope import Envelope, open_envelope
from gateway.xml.schemas import SchemaSet
from gateway.xml.signatures import Signer
from gateway.xml.trust import TrustStore

log = structlog.get_logger("tracegate.pipeline")
_R = TypeVar("_R")
_OWN = threading.local()  # a parser per thread, for documents the gateway itself composed


def _own_parser() -> etree.XMLParser:
    """This thread's parser (an lxml parser serves one thread at a time)."""
    parser: etree.XMLParser | None = getattr(_OWN, "parser", None)
    if parser is None:
        parser = _OWN.parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return parser


@dataclass
class Pipeline:
    """Runs every inbound message through the checks and the group committer."""

    schemas: SchemaSet
    trust: TrustStore
    signer: Signer
    table: RoutingTable
    units: UnitsOfWork  # the store's `unit_of_work`
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
    hand_over: Callable[[Sequence[OutboxMessage]], None] = lambda rows: None  # the relay's, once committed
    makes: Makes = field(default_factory=Makes.none)  # the register's alias list of firearm makes
    _committer: GroupCommitter | None = field(default=None, repr=False)

    @property
    def committer(self) -> GroupCommitter:
        """The group committer (made on first use, with this pipeline's rules and signing)."""
        if self._committer is None:
            self._committer = GroupCommitter(
                units=lambda: self.units(),
                rules=self.rules,
                sign=self._sign,
                hand_over=lambda rows: self.hand_over(rows),
                max_batch=self.max_batch,
            )
        return self._committer

    def rules(self) -> Rules:
        """The rules a batch is decided by (the routing table in force when it starts)."""
        return Rules(table=self.table, policy=self.policy, max_message_bytes=self.max_message_bytes, makes=self.makes)

    @property
    def limits(self) -> Limits:
        """The operator's limits on what is accepted."""
        return Limits(self.max_message_bytes, self.max_age_seconds, self.max_skew_seconds, self.require_user_id)

    async def handle(self, message: Inbound) -> Outcome:
        """Process one message; raises only for faults a retry may cure (`TransientError`)."""
        started = time.perf_counter()
        now = self.clock()
        if self.crypto is None and self.large is not None and len(message.body) > self.inline_check_bytes:
            # A large message's checks cost in proportion to its size (the parser's caps see to that), up to
            # milliseconds for 1 MiB: they run beside the loop, so no one sender's large messages hold up others'.
            loop = asyncio.get_running_loop()
            envelope, checked = await loop.run_in_executor(self.large, self._open_and_check, message, now)
        else:
            envelope, checked = await self._off_loop(self._open_and_check, message, now)
        outcome = await self.committer.submit(self._arrival(message, envelope, checked, slot_of(checked), now))
        self.on_commit()
        log.info("message", ms=round((time.perf_counter() - started) * 1000, 2), **outcome.__dict__)
        return outcome

    def _arrival(
        self, message: Inbound, envelope: Envelope | None, checked: Verified | Refused, slot: str, now: datetime
    ) -> Arrival:
        """The checked message as `decide` takes it."""
        return Arrival(
            sender=message.transport_sender,
            slot=slot,
            body=message.body,
            digest=hashlib.sha256(message.body).hexdigest(),
            now=now,
            kind=envelope.kind if envelope else "unreadable",
            message_id=envelope.message_id if envelope else None,
            named_trace=envelope.trace_id if envelope else None,
            checked=checked,
            proven_sender=not (self.require_user_id and not message.user_id),
        )

    async def give_up(self, message: Inbound, error: BaseException) -> None:
        """After the last attempt failed unexpectedly: record it and tell the sender; the broker keeps the message.

        The record gets a key of its own, so the message, retried later from the dead-letter queue, is decided
        afresh rather than answered as a duplicate.
        """
        envelope = None
        with contextlib.suppress(Refused):
            envelope = open_envelope(message.body, max_bytes=self.max_message_bytes)
        refusal = Refused(
            ErrorCode.PROCESSING_FAILED,
            f"the gateway could not process this message after {message.attempt} attempts "
            f"({type(error).__name__}); it is held for an administrator",
        )
        await self.committer.submit(self._arrival(message, envelope, refusal, f"failed:{uuid.uuid4()}", self.clock()))
        self.on_commit()
        kind = envelope.kind if envelope else "unreadable"
        log.error("message given up", kind=kind, sender=message.transport_sender, attempts=message.attempt)

    async def _off_loop(self, work: Callable[..., _R], *args: Any) -> _R:
        """Run CPU-bound work (parsing, XML-DSig) on the crypto threads if there are any; lxml and xmlsec release
        the GIL there, so it runs beside the event loop's own work on another core."""
        if self.crypto is None:
            return work(*args)
        return await asyncio.get_running_loop().run_in_executor(self.crypto, work, *args)

    def _open_and_check(self, message: Inbound, now: datetime) -> tuple[Envelope | None, Verified | Refused]:
        """The envelope (if readable) and the verdict of every check that needs no database."""
        return open_and_check(
            message, now, schemas=self.schemas, trust=self.trust, table=self.table, limits=self.limits
        )

    async def _sign(self, messages: Sequence[Unsigned]) -> list[OutboxMessage]:
        """Sign a batch's gateway messages at once: on the signing thread if there is one, else on the crypto
        threads, else here. A tree handed to another thread goes as bytes and is parsed afresh there: lxml trees
        are modified only by the thread that made them."""
        if not messages:
            return []
        if self.signing is None and self.crypto is None:
            return self._seal_all(messages)
        documents = [(kind, recipient, etree.tostring(root)) for kind, recipient, root in messages]
        executor = self.signing if self.signing is not None else self.crypto
        return await asyncio.get_running_loop().run_in_executor(executor, self._seal_all, documents)

    def _seal_all(self, messages: Sequence[tuple[str, str, bytes | etree._Element]]) -> list[OutboxMessage]:
        """Sign and address gateway messages (a document given as bytes is parsed on this thread first)."""
        return [
            self._seal(kind, recipient, document if isinstance(document, etree._Element) else self._reparse(document))
            for kind, recipient, document in messages
        ]

    @staticmethod
    def _reparse(document: bytes) -> etree._Element:
        """A document the gateway composed, parsed on this thread."""
        return etree.fromstring(document, _own_parser())

    def _seal(self, kind: str, recipient: str, root: etree._Element) -> OutboxMessage:
        """Sign a gateway message and address it."""
        return seal(self.signer, self.table, kind, recipient, root, max_bytes=self.max_message_bytes)
