"""The pure core: `decide` from a snapshot of values, and the group committer over a hand-written fake unit of work.

No database, no broker, no signature: a message is `Verified` by construction here (the checks have their own
tests), and the fake unit of work holds the store's state in dictionaries.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from gateway.core.deadlines import DeadlinePolicy
from gateway.core.decide import UNANSWERED_NO_USER_ID, Decided, decide
from gateway.core.effects import Effects, OutboxMessage
from gateway.core.errors import ErrorCode, Refused, TransientError
from gateway.core.model import NS, Trace, TraceStatus
from gateway.core.snapshot import Arrival, Earlier, Page, Rules, Snapshot, Verified, Wanted, page_query, wanted
from gateway.dev import samples
from gateway.pipeline.committer import GroupCommitter
from gateway.routing.table import RoutingTable, parse_table
from gateway.xml.read import read_header

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TABLE: RoutingTable = parse_table(
    {"states": {s: {"status": "active"} for s in ("ZA", "MZ", "BR", "AT", "KE")}}, where="test"
)
RULES = Rules(table=TABLE, policy=DeadlinePolicy())
TO_MZ = [("ZA", "MZ", "2019-06-14")]
_T = f"{{{NS}}}"


def arrival(root: etree._Element, *, sender: str | None = None, now: datetime = NOW) -> Arrival:
    """A verified message as the checks would hand it over."""
    header = read_header(root)
    body = etree.tostring(root)
    kind = etree.QName(root).localname
    return Arrival(
        sender=sender or header.sender,
        slot=header.message_id.lower(),
        body=body,
        digest=hashlib.sha256(body).hexdigest(),
        now=now,
        kind=kind,
        message_id=header.message_id,
        named_trace=header.trace_id,
        checked=Verified(root=root, header=header, kind=kind),
    )


def refused(sender: str, code: ErrorCode, *, proven: bool = True) -> Arrival:
    """A message the checks refused before the database."""
    return Arrival(
        sender=sender,
        slot="unverified:1",
        body=b"<x/>",
        digest="0" * 64,
        now=NOW,
        kind="TraceRequest",
        message_id=None,
        named_trace=None,
        checked=Refused(code, "refused by a check"),
        proven_sender=proven,
    )


def kinds(d: Decided) -> list[tuple[str, str]]:
    """(kind, recipient) of what a decision sends."""
    return [(kind, recipient) for kind, recipient, _ in d.outgoing]


def test_a_first_request_opens_a_trace_routed_by_its_export_record_with_its_clocks() -> None:
    """Delivered to the exporting state, a Receipt to the requester, four notices planned, nothing else read."""
    (d,) = decide(Snapshot(), [arrival(samples.trace_request("ZA", exports=TO_MZ))], RULES)
    assert d.outcome.outcome == "accepted" and d.outcome.routed_to == "MZ" and d.outcome.rule == "export-record"
    assert d.trace is not None and d.new_trace and d.trace.status is TraceStatus.DELIVERED
    assert d.trace.deadlines.acknowledge_by == NOW + timedelta(days=7)
    assert kinds(d) == [("Delivery", "MZ"), ("Receipt", "ZA")]
    assert len(d.plan) == 4 and d.record is not None and d.record.table_version == TABLE.version


def test_a_later_message_of_a_batch_sees_the_trace_an_earlier_one_opened() -> None:
    """An acknowledgement decided right after its request, in the same batch, finds the trace and settles its
    acknowledgement notices."""
    request = samples.trace_request("ZA", exports=TO_MZ)
    trace_id = read_header(request).message_id
    ack = samples.reply("Acknowledgement", "MZ", trace_id)
    _, acknowledged = decide(Snapshot(), [arrival(request), arrival(ack)], RULES)
    assert acknowledged.outcome.outcome == "accepted", acknowledged.outcome.detail
    assert acknowledged.trace is not None and acknowledged.trace.acknowledged is not None
    assert any(k.startswith("acknowledgement") for k in acknowledged.settle)
    assert kinds(acknowledged) == [("Delivery", "ZA"), ("Receipt", "MZ")]


def test_the_same_acknowledgement_alone_is_refused_unknown_trace() -> None:
    """Without its trace in the snapshot (nor earlier in the batch), the message is refused, with a Rejection."""
    ack = samples.reply("Acknowledgement", "MZ", "4b1c9a8e-0000-4000-8000-000000000001")
    (d,) = decide(Snapshot(), [arrival(ack)], RULES)
    assert (d.outcome.outcome, d.outcome.code) == ("refused", "UNKNOWN_TRACE")
    assert kinds(d) == [("Rejection", "MZ")] and d.record is not None and d.record.outcome == "refused"


def test_a_repeat_within_a_batch_records_nothing_and_points_at_the_first() -> None:
    """The second copy is a duplicate of the first's slot: no record, answered with the first's answers."""
    request = samples.trace_request("ZA", exports=TO_MZ)
    first, again = decide(Snapshot(), [arrival(request), arrival(request)], RULES)
    assert again.outcome.outcome == "duplicate" and again.record is None and again.repeat_of == 0
    assert again.outcome.trace_id == first.outcome.trace_id and again.outgoing == ()


def test_a_repeat_of_a_committed_message_resends_its_stored_answers() -> None:
    """An earlier message in the snapshot: its first answers are sent again, byte for byte."""
    request = samples.trace_request("ZA", exports=TO_MZ)
    a = arrival(request)
    answer = OutboxMessage("m-1", "ZA", "itrace.outbound.ZA", "Receipt", a.message_id, b"<signed/>", id=7)
    earlier = Earlier(1, "TraceRequest", a.message_id, None, a.message_id, "accepted", (answer,))
    (d,) = decide(Snapshot(earlier={(a.sender, a.slot): earlier}), [a], RULES)
    assert d.outcome.outcome == "duplicate" and d.resend == (answer,) and d.record is None


def test_a_refusal_is_answered_unless_its_sender_is_unproven() -> None:
    """A Rejection goes to a connected sender; without a broker-validated user it goes to no one."""
    answered, unanswered = decide(
        Snapshot(),
        [refused("ZA", ErrorCode.SIGNATURE_INVALID), refused("ZA", ErrorCode.SENDER_MISMATCH, proven=False)],
        RULES,
    )
    assert kinds(answered) == [("Rejection", "ZA")] and answered.outcome.code == "SIGNATURE_INVALID"
    assert unanswered.outgoing == () and unanswered.unanswered == UNANSWERED_NO_USER_ID
    assert unanswered.record is not None and unanswered.record.code == "SENDER_MISMATCH"


def test_decide_returns_frozen_values_and_leaves_the_snapshot_alone() -> None:
    """Deciding twice from the same snapshot gives the same decisions: nothing it was given was changed."""
    request = samples.trace_request("ZA", exports=TO_MZ)
    snapshot = Snapshot()
    one, two = decide(snapshot, [arrival(request)], RULES), decide(snapshot, [arrival(request)], RULES)
    assert one[0].outcome == two[0].outcome and dict(snapshot.traces) == {}
    with pytest.raises(AttributeError):
        one[0].outcome.outcome = "refused"  # type: ignore[misc]


def _trace(trace_id: str, *, opened: datetime, requester: str = "ZA", party: str = "MZ") -> Trace:
    """A stored trace, delivered."""
    (d,) = decide(Snapshot(), [arrival(samples.trace_request(requester, exports=TO_MZ, message_id=trace_id))], RULES)
    assert d.trace is not None
    return replace(d.trace, opened_at=opened, updated_at=opened, party=party)


def test_a_status_query_sees_the_traces_its_batch_changed_before_it() -> None:
    """The stored page, with the batch's earlier changes applied before the page is cut."""
    stored = _trace("00000000-0000-4000-8000-000000000001", opened=NOW - timedelta(days=3))
    request = samples.trace_request("ZA", exports=TO_MZ)
    query = samples.message("StatusQuery", "ZA")
    asked = arrival(query)
    page = page_query(asked.verified)  # type: ignore[arg-type]
    assert page is not None
    snapshot = Snapshot(pages={page: Page(after=None, traces=(stored,))})
    _, report = decide(snapshot, [arrival(request), asked], RULES)
    (_, _, root) = report.outgoing[0]
    listed = [e.findtext(f"{_T}TraceId") for e in root.iter(f"{_T}Trace")]
    assert listed == [stored.trace_id, read_header(request).message_id]


def test_wanted_names_every_read_a_batch_needs_once() -> None:
    """Slots, traces (named and to be opened) and pages, without repeats; the slack is the batch's size."""
    request = samples.trace_request("ZA", exports=TO_MZ)
    a = arrival(request)
    w = wanted([a, a, refused("BR", ErrorCode.MALFORMED_XML)])
    assert w.slots == ((a.sender, a.slot),) and w.trace_ids == (a.message_id,) and w.pages == () and w.slack == 3


class FakeUnitOfWork:
    """The store as dictionaries: what `load` returns and what `commit` received."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store

    async def load(self, wanted: Wanted) -> Snapshot:
        """The stored traces the batch names (or the fault set on the store)."""
        self.store.loads.append(wanted)
        if self.store.fail_with is not None:
            raise self.store.fail_with
        return Snapshot(traces={t: self.store.traces[t] for t in wanted.trace_ids if t in self.store.traces})

    async def commit(self, effects: Sequence[Effects], **_: object) -> list[OutboxMessage]:
        """Keep the traces, number the rows, remember the effects."""
        rows = []
        for e in effects:
            if e.trace is not None:
                self.store.traces[e.trace.trace_id] = e.trace
            for m in e.outgoing:
                self.store.next_id += 1
                rows.append(replace(m, id=self.store.next_id))
        self.store.commits.append(list(effects))
        return rows


class FakeStore:
    """Holds the fake's state across units of work."""

    def __init__(self) -> None:
        self.traces: dict[str, Trace] = {}
        self.loads: list[Wanted] = []
        self.commits: list[list[Effects]] = []
        self.next_id = 0
        self.fail_with: Exception | None = None

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[FakeUnitOfWork]:
        """One unit of work."""
        yield FakeUnitOfWork(self)


async def _sign(messages: Sequence[tuple[str, str, etree._Element]]) -> list[OutboxMessage]:
    """Seal without a signature: the committer's signing step as a value."""
    return [
        OutboxMessage(f"m-{i}", r, f"itrace.outbound.{r}", k, None, etree.tostring(x))
        for i, (k, r, x) in enumerate(messages)
    ]


def _committer(store: FakeStore, handed: list[OutboxMessage]) -> GroupCommitter:
    """A committer over the fake store, handing committed rows to `handed`."""
    return GroupCommitter(units=store.unit_of_work, rules=lambda: RULES, sign=_sign, hand_over=handed.extend)


async def test_messages_submitted_together_share_one_unit_of_work_and_their_rows_are_handed_over() -> None:
    """Twelve requests at once: one load and one commit for all (after the first, which commits alone), every
    committed row handed to the relay once, each message its own outcome."""
    store, handed = FakeStore(), list[OutboxMessage]()
    committer = _committer(store, handed)
    requests = [arrival(samples.trace_request("ZA", exports=TO_MZ)) for _ in range(12)]
    outcomes = await asyncio.gather(*(committer.submit(a) for a in requests))
    assert [o.outcome for o in outcomes] == ["accepted"] * 12
    assert len(store.commits) == len(store.loads) <= 2
    assert len(handed) == 24 and len({m.id for m in handed}) == 24
    assert len(store.traces) == 12


async def test_a_repeat_in_the_same_batch_is_answered_with_the_first_answers_signed_bytes() -> None:
    """The copy's Receipt is the very row the first message's Receipt became."""
    store, handed = FakeStore(), list[OutboxMessage]()
    committer = _committer(store, handed)
    request = arrival(samples.trace_request("ZA", exports=TO_MZ))
    first, again = await asyncio.gather(committer.submit(request), committer.submit(request))
    assert (first.outcome, again.outcome) == ("accepted", "duplicate")
    receipts = [m for m in handed if m.kind == "Receipt"]
    assert len(receipts) == 2 and receipts[0].body == receipts[1].body


async def test_a_database_fault_fails_every_message_of_the_batch_for_a_retry() -> None:
    """TransientError reaches each waiting message; nothing was committed."""
    store, handed = FakeStore(), list[OutboxMessage]()
    store.fail_with = TransientError("database unavailable")
    committer = _committer(store, handed)
    results = await asyncio.gather(
        *(committer.submit(arrival(samples.trace_request("ZA", exports=TO_MZ))) for _ in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(r, TransientError) for r in results) and store.commits == [] and handed == []


async def test_any_other_fault_is_isolated_by_committing_one_by_one() -> None:
    """A decide that fails on one message: that message gets the fault, the others commit."""
    store, handed = FakeStore(), list[OutboxMessage]()
    committer = _committer(store, handed)

    def failing(snapshot: Snapshot, arrivals: Sequence[Arrival], rules: Rules) -> tuple[Decided, ...]:
        if any(b"POISON" in a.body for a in arrivals):
            raise RuntimeError("a fault no retry cures")
        return decide(snapshot, arrivals, rules)

    committer.decide = failing
    bodies = [samples.trace_request("ZA", exports=TO_MZ, serial="POISON" if i == 2 else "BXK291") for i in range(5)]
    results = await asyncio.gather(*(committer.submit(arrival(b)) for b in bodies), return_exceptions=True)
    assert isinstance(results[2], RuntimeError)
    assert [r.outcome for i, r in enumerate(results) if i != 2] == ["accepted"] * 4  # type: ignore[union-attr]
