"""What `decide` takes: the checked messages of a batch, and a snapshot of what the store held for them.

The committer asks the unit of work for the snapshot a batch needs (`wanted`) in one read, then decides every
message of the batch against it, in arrival order, without awaiting anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lxml import etree

from gateway.core.deadlines import DeadlinePolicy
from gateway.core.effects import OutboxMessage
from gateway.core.errors import Refused
from gateway.core.model import NS, Header, Trace
from gateway.records.matching import Makes, shape_key
from gateway.records.register import RegisterRecord
from gateway.routing.table import RoutingTable
from gateway.xml.read import text

STATUS_PAGE_LIMIT = 1000  # traces per StatusReport (and the largest Limit): about 350 bytes each, far inside 1 MiB


@dataclass(frozen=True)
class Verified:
    """A message that passed every check that needs no database: its signed content and header."""

    root: etree._Element
    header: Header
    kind: str


@dataclass(frozen=True)
class Arrival:
    """One checked message, as the committer hands it to `decide`."""

    sender: str  # who the transport says sent it
    slot: str  # its duplicate slot: the verified sender's MessageId, or a key of its own
    body: bytes
    digest: str
    now: datetime
    kind: str  # the envelope's message type, or "unreadable"
    message_id: str | None
    named_trace: str | None  # the TraceId it names, as read before any check (kept with a refusal)
    checked: Verified | Refused
    proven_sender: bool = True  # False: no broker-validated user where each state has one (not answered)

    @property
    def verified(self) -> Verified | None:
        """Its verified content, unless it was refused before the database."""
        return self.checked if isinstance(self.checked, Verified) else None

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


@dataclass(frozen=True)
class PageQuery:
    """The traces a `StatusQuery` asks for: its own state's, filtered, after a trace, at most `limit`."""

    state: str
    role: str | None
    status: str | None
    since: datetime | None
    trace_id: str | None
    after_id: str | None
    limit: int


def page_query(verified: Verified) -> PageQuery | None:
    """The page a verified `StatusQuery` reads (None for any other message)."""
    if verified.kind != "StatusQuery":
        return None
    root, header = verified.root, verified.header
    since = text(root, "Since")
    return PageQuery(
        state=header.sender,
        role=text(root, "Role"),
        status=text(root, "Status"),
        since=datetime.fromisoformat(since.replace("Z", "+00:00")) if since else None,
        trace_id=header.trace_id,
        after_id=text(root, "After"),
        limit=int(text(root, "Limit") or STATUS_PAGE_LIMIT),
    )


@dataclass(frozen=True)
class Page:
    """What the store held for a `PageQuery`: the `After` trace (if the state has it) and the traces after it.

    `traces` holds up to `limit` + 1 + the batch's size: the messages before the query in its batch may change
    that many of them, and `decide` applies their changes before cutting the page."""

    after: Trace | None
    traces: tuple[Trace, ...]


@dataclass(frozen=True)
class Earlier:
    """An earlier message in the same sender's duplicate slot, and the first answers sent to its sender."""

    inbound_id: int
    kind: str
    message_id: str | None
    code: str | None
    trace_id: str | None
    outcome: str
    answers: tuple[OutboxMessage, ...]


@dataclass(frozen=True)
class Wanted:
    """What a batch needs read: duplicate slots, traces, and StatusQuery pages (with the slack `Page` describes);
    for the register, the records of the references it reports or withdraws, the active records its firearms'
    serials fold like (`matching.shape_key`), and the hits its resubmitted traces made already."""

    slots: tuple[tuple[str, str], ...]
    trace_ids: tuple[str, ...]
    pages: tuple[PageQuery, ...]
    slack: int
    references: tuple[str, ...] = ()
    shapes: tuple[str, ...] = ()
    hit_traces: tuple[str, ...] = ()


_REFERENCED = frozenset({"RecordReport", "RecordWithdrawal"})
_MATCHED = frozenset({"TraceRequest", "RecordQuery"})
_FIREARM = f"{{{NS}}}Firearm"


def _shape(verified: Verified) -> str | None:
    """The look-alike key of the serial a trace request or record query gives, if any."""
    if verified.kind not in _MATCHED:
        return None
    firearm = next(verified.root.iterchildren(_FIREARM), None)
    return shape_key(text(firearm, "SerialNumber") or "") or None


def wanted(arrivals: Sequence[Arrival]) -> Wanted:
    """The reads a batch's decisions need."""
    verified = [a.verified for a in arrivals if a.verified is not None]
    pages = (page_query(v) for v in verified)
    references = (text(v.root, "Reference") for v in verified if v.kind in _REFERENCED)
    shapes = (_shape(v) for v in verified)
    resubmitted = (v.header.trace_id for v in verified if v.kind == "TraceRequest")
    return Wanted(
        slots=tuple(dict.fromkeys((a.sender, a.slot) for a in arrivals if a.holds_slot)),
        trace_ids=tuple(dict.fromkeys(t for a in arrivals for t in a.trace_ids)),
        pages=tuple(dict.fromkeys(p for p in pages if p is not None)),
        slack=len(arrivals),
        references=tuple(dict.fromkeys(r for r in references if r)),
        shapes=tuple(dict.fromkeys(s for s in shapes if s)),
        hit_traces=tuple(dict.fromkeys(t for t in resubmitted if t)),
    )


@dataclass(frozen=True)
class Snapshot:
    """The store's state for one batch, read at its start: only what `Wanted` named (absent means none)."""

    earlier: Mapping[tuple[str, str], Earlier] = field(default_factory=dict)
    traces: Mapping[str, Trace] = field(default_factory=dict)
    pages: Mapping[PageQuery, Page] = field(default_factory=dict)
    records: Mapping[tuple[str, str], RegisterRecord] = field(default_factory=dict)  # by (state, reference)
    candidates: Mapping[str, tuple[RegisterRecord, ...]] = field(default_factory=dict)  # active, by shape key
    hits: frozenset[tuple[str, str, str]] = frozenset()  # (state, reference, trace) hit already


@dataclass(frozen=True)
class Rules:
    """The administrators' rules a batch is decided by: one routing table version for the whole batch."""

    table: RoutingTable
    policy: DeadlinePolicy
    max_message_bytes: int = 1_048_576
    makes: Makes = field(default_factory=Makes.none)  # the administrators' alias list of firearm makes
