"""What each message of a batch does: pure (no await, no I/O), from a snapshot, returning frozen values.

`decide` takes the batch's checked messages in arrival order and the snapshot the store read for them; a later
message sees what an earlier one did (its trace, its duplicate slot). Routing (`routing.rules.route`) and the
lifecycle (`lifecycle.apply`) are pure too; the gateway messages are composed here, signed by the committer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from lxml import etree

from gateway.core import lifecycle
from gateway.core.deadlines import PlannedNotice, settled_by
from gateway.core.effects import InboundRecord, OutboxMessage, Outcome
from gateway.core.errors import ErrorCode, Refused
from gateway.core.lifecycle import Transition
from gateway.core.model import (
    NS,
    Acknowledged,
    Acknowledgement,
    Header,
    Route,
    Rule,
    Trace,
)
from gateway.core.requests import Decision, Unsigned, open_trace, resubmit, trace_of
from gateway.core.snapshot import Arrival, Earlier, Rules, Snapshot, Verified, page_query
from gateway.core.status import status_report
from gateway.records.decide import RECORD_KINDS, decide_register, with_hits
from gateway.records.register import Hit, RegisterChange, RegisterRecord
from gateway.xml import compose
from gateway.xml.read import read_restrictions, read_trace_request, text

_T = f"{{{NS}}}"
REASONED = {"DelayNotice": "Reason", "Refusal": "Reason"}
# Below the relayable size by this much, a message's answers are not measured (restriction and reason texts, at
# most 4,000 characters each by the XSDs, are all a Delivery adds beyond its payload and fixed elements).
UNMEASURED_MARGIN = 40_000
# Why a refusal goes unanswered where each state has its own broker user (logged by the committer).
UNANSWERED_NO_USER_ID = "refused, unanswered: no user_id"


@dataclass(frozen=True)
class Decided:
    """What one message of a batch comes to: its outcome, what to record, and what to send.

    A repeat records nothing: it is answered with the first answers, which are either committed already
    (`resend`) or those of an earlier message of the same batch (`repeat_of`, its index), known once signed."""

    outcome: Outcome
    record: InboundRecord | None
    trace: Trace | None = None
    new_trace: bool = False
    settle: frozenset[str] = frozenset()
    plan: tuple[PlannedNotice, ...] = ()
    outgoing: tuple[Unsigned, ...] = ()
    resend: tuple[OutboxMessage, ...] = ()
    repeat_of: int | None = None
    unanswered: str | None = None  # why a refusal is answered to no one
    at: datetime | None = None  # when a repeat was decided (a record carries its own time)
    register: tuple[RegisterChange, ...] = ()
    hits: tuple[Hit, ...] = ()


@dataclass
class _View:
    """The snapshot as the batch has changed it so far (private to one call of `decide`)."""

    snapshot: Snapshot
    changed: dict[str, Trace] = field(default_factory=dict)
    taken: dict[tuple[str, str], int] = field(default_factory=dict)
    records: dict[tuple[str, str], RegisterRecord] = field(default_factory=dict)
    hits: set[tuple[str, str, str]] = field(default_factory=set)

    def trace(self, trace_id: str) -> Trace | None:
        """A trace as the batch leaves it so far."""
        found = self.changed.get(trace_id)
        return found if found is not None else self.snapshot.traces.get(trace_id)

    def record(self, key: tuple[str, str]) -> RegisterRecord | None:
        """A register record as the batch leaves it so far."""
        found = self.records.get(key)
        return found if found is not None else self.snapshot.records.get(key)

    def holders(self, reference: str) -> set[str]:
        """The states holding a record of `reference`."""
        keys = set(self.snapshot.records) | set(self.records)
        return {state for state, ref in keys if ref == reference}

    def candidates(self, shape: str) -> list[RegisterRecord]:
        """The active records whose serial folds to `shape`, with the batch's reports and withdrawals applied."""
        found = {r.key: r for r in self.snapshot.candidates.get(shape, ())}
        found.update({k: r for k, r in self.records.items() if k in found or r.shape == shape})
        return [r for r in found.values() if r.active and r.shape == shape]

    def hit(self, key: tuple[str, str, str]) -> bool:
        """Whether a record and a trace met already."""
        return key in self.hits or key in self.snapshot.hits

    def apply(self, decision: Decision) -> None:
        """Let the batch's later messages see what an accepted one changed."""
        if decision.trace is not None:
            self.changed[decision.trace.trace_id] = decision.trace
        for change in decision.register:
            self.records[change.record.key] = change.record
        self.hits.update(h.key for h in decision.hits)


def decide(snapshot: Snapshot, arrivals: Sequence[Arrival], rules: Rules) -> tuple[Decided, ...]:
    """Every message of a batch, in arrival order: a repeat answered again, the rest decided (or refused)."""
    view = _View(snapshot)
    decided: list[Decided] = []
    for index, arrival in enumerate(arrivals):
        decided.append(_one(view, arrival, index, decided, rules))
    return tuple(decided)


def _one(view: _View, a: Arrival, index: int, before: Sequence[Decided], rules: Rules) -> Decided:
    """One message: a repeat of its slot, or decided and recorded."""
    if a.holds_slot:
        key = (a.sender, a.slot)
        first = view.taken.get(key)
        if first is not None:
            record = before[first].record
            assert record is not None
            return _repeat(a, record.kind, record.message_id, record.code, record.trace_id, record.outcome, first)
        earlier = view.snapshot.earlier.get(key)
        if earlier is not None:
            return _repeat(
                a, earlier.kind, earlier.message_id, earlier.code, earlier.trace_id, earlier.outcome, None, earlier
            )
        view.taken[key] = index
    checked = a.checked
    if isinstance(checked, Verified):
        try:
            decision = _decide_verified(view, checked, a.body, a.now, rules)
            _check_fits(decision.messages, checked.kind, len(a.body), rules.max_message_bytes)
        except Refused as refusal:
            return _rejected(a, refusal, rules)
        view.apply(decision)
        return _accepted(a, decision, rules)
    return _rejected(a, checked, rules)


def _repeat(
    a: Arrival,
    kind: str,
    message_id: str | None,
    code: str | None,
    trace_id: str | None,
    outcome: str,
    first: int | None,
    earlier: Earlier | None = None,
) -> Decided:
    """A repeated (sender, MessageId): no second effect; the first answer is sent again."""
    return Decided(
        Outcome(
            "duplicate",
            kind,
            message_id,
            a.sender,
            code=code,
            trace_id=trace_id,
            detail=f"repeat of a message first {outcome}",
        ),
        record=None,
        resend=earlier.answers if earlier is not None else (),
        repeat_of=first,
        at=a.now,
    )


def _accepted(a: Arrival, decision: Decision, rules: Rules) -> Decided:
    """The record and effects of an accepted message."""
    record = InboundRecord(
        a.sender,
        a.slot,
        a.message_id,
        a.kind,
        decision.trace.trace_id if decision.trace else None,
        a.now,
        a.body,
        a.digest,
        "accepted",
        rule=decision.rule,
        table_version=rules.table.version,
    )
    outcome = Outcome(
        "accepted",
        a.kind,
        a.message_id,
        a.sender,
        trace_id=record.trace_id,
        routed_to=decision.routed_to,
        rule=decision.rule,
    )
    return Decided(
        outcome,
        record,
        trace=decision.trace,
        new_trace=decision.new_trace,
        settle=frozenset(str(k) for k in decision.settle),
        plan=decision.plan,
        outgoing=decision.messages,
        register=decision.register,
        hits=decision.hits,
    )


def _rejected(a: Arrival, refusal: Refused, rules: Rules) -> Decided:
    """Record a refusal (with the trace it named, if readable) and answer it with a `Rejection`, if it can be."""
    record = InboundRecord(
        a.sender,
        a.slot,
        a.message_id,
        a.kind[:64],
        (a.named_trace or "").lower() or None,
        a.now,
        a.body,
        a.digest,
        "refused",
        code=refusal.code.value,
        detail=refusal.detail,
        table_version=rules.table.version,
    )
    outgoing: tuple[Unsigned, ...] = ()
    unanswered = None
    if not a.proven_sender:
        unanswered = UNANSWERED_NO_USER_ID  # its routing key is only a claim: answering there would let anyone
        # fill another state's queue
    elif rules.table.entry(a.sender) is not None:
        root = compose.rejection(now=a.now, rejected_id=a.message_id, code=refusal.code.value, detail=refusal.detail)
        outgoing = (("Rejection", a.sender, root),)
    outcome = Outcome("refused", a.kind, a.message_id, a.sender, code=refusal.code.value, detail=refusal.detail)
    return Decided(outcome, record, outgoing=outgoing, unanswered=unanswered)


def _check_fits(messages: Sequence[Unsigned], kind: str, size: int, max_bytes: int) -> None:
    """TOO_LARGE when a message this one causes would be over the cap once signed: nothing the gateway sends
    exceeds what the contract lets a national system refuse (a Delivery carries the message in base64). Only a
    message near the relayable size is measured: below it, every answer fits with room to spare (a Delivery's
    other elements are bounded by the XSDs, a StatusReport by its page size)."""
    if size <= compose.relayable_bytes(max_bytes) - UNMEASURED_MARGIN:
        return
    for out_kind, _, root in messages:
        bound = compose.signed_size_bound(root)
        if bound <= max_bytes:
            continue
        if out_kind == "Delivery":
            raise Refused(
                ErrorCode.TOO_LARGE,
                f"the {kind} is {size} bytes; relayed in base64 its Delivery would be about {bound} bytes, over "
                f"the {max_bytes}-byte limit on every message; the largest {kind} that can be "
                f"relayed is about {compose.relayable_bytes(max_bytes)} bytes",
            )
        raise Refused(
            ErrorCode.TOO_LARGE,
            f"the {out_kind} answering it would be about {bound} bytes, over the {max_bytes}-byte "
            "limit on every message" + ("; ask with a smaller Limit" if out_kind == "StatusReport" else ""),
        )


def _decide_verified(view: _View, v: Verified, body: bytes, now: datetime, rules: Rules) -> Decision:
    """The decision on one verified message, or `Refused`."""
    table, policy, header, kind, root = rules.table, rules.policy, v.header, v.kind, v.root
    if kind == "TraceRequest":
        request = read_trace_request(root)
        if header.trace_id is None and request.resubmits is None:
            opened = open_trace(view.trace, request, body, table=table, policy=policy, now=now)
        else:
            opened = resubmit(view.trace, request, body, table=table, policy=policy, now=now)
        return with_hits(view, opened, root, now, rules.makes, lambda state: table.entry(state) is not None)
    if kind in RECORD_KINDS:
        return decide_register(view, root, header, kind, now, rules.makes)
    if kind == "StatusQuery":
        query = page_query(v)
        assert query is not None
        report = status_report(query, view.snapshot.pages[query], view.changed, now)
        return Decision(trace=None, messages=(("StatusReport", header.sender, report),))
    lifecycle.require_kind(kind)
    _require_reason(root, kind)
    trace = trace_of(view.trace, header, kind)
    transition = lifecycle.apply(trace, kind, header.sender)
    updated = _record(trace, root, header, kind, transition, now)
    reply = Route(origin=header.sender, party=transition.recipient, rule=Rule.REPLY, table_version=table.version)
    restrictions = read_restrictions(root) if kind == "TraceResponse" else None
    relay = compose.delivery(
        now=now,
        trace_id=trace.trace_id,
        route=reply,
        recipient=transition.recipient,
        payload=body,
        restrictions=restrictions,
    )
    receipt = compose.receipt(
        now=now, trace_id=trace.trace_id, accepted_id=header.message_id, status=updated.status.value
    )
    return Decision(
        trace=updated,
        messages=(("Delivery", transition.recipient, relay), ("Receipt", header.sender, receipt)),
        rule=Rule.REPLY.value,
        routed_to=transition.recipient,
        settle=frozenset(settled_by(kind, policy, implies_acknowledgement=transition.implies_acknowledgement)),
    )


def _require_reason(root: etree._Element, kind: str) -> None:
    """REASON_REQUIRED for a delay, refusal or partial response without its reason code (8.3.4.2)."""
    if kind in REASONED and text(root, "Reason") is None:
        raise Refused(
            ErrorCode.REASON_REQUIRED,
            f"a {kind} must give its Reason code (ISACS 05.31, 8.3.4.2: inform the requesting State)",
        )
    partial = root.find(f"{_T}Partial") if kind == "TraceResponse" else None
    if partial is not None and text(partial, "Reason") is None:
        raise Refused(
            ErrorCode.REASON_REQUIRED,
            "a partial (restricted) response must give its Partial/Reason code (ISACS 05.31, 8.3.4.2)",
        )


def _record(
    trace: Trace, root: etree._Element, header: Header, kind: str, transition: Transition, now: datetime
) -> Trace:
    """The trace after `kind`: status, what it carried that status shows (delay, restrictions), and its
    acknowledgement: given, or implied by an answer sent before it (its time and message)."""
    changes: dict[str, object] = {"status": transition.status, "updated_at": now}
    if kind == "Acknowledgement" or transition.implies_acknowledgement:
        how = Acknowledgement.IMPLIED if transition.implies_acknowledgement else Acknowledgement.EXPLICIT
        changes["acknowledged"] = Acknowledged(at=now, message_id=header.message_id, how=how)
    if kind == "DelayNotice":
        expected = text(root, "ExpectedBy")
        changes["delay_reason"] = text(root, "Reason")
        changes["delay_expected_by"] = date.fromisoformat(expected[:10]) if expected else None
    if kind == "TraceResponse":
        changes["restrictions"] = read_restrictions(root)
    return dataclasses.replace(trace, **changes)  # type: ignore[arg-type]
