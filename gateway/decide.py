"""What an accepted message does to its trace, and which gateway messages it causes (routing, lifecycle).

Reads the trace through the open transaction; routing and the lifecycle themselves are pure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime

from lxml import etree

from gateway import compose, lifecycle
from gateway.deadlines import ALL_NOTICES, DeadlinePolicy, PlannedNotice, is_overdue, notices_for, plan, settled_by
from gateway.errors import ErrorCode, Refused
from gateway.lifecycle import Transition, article
from gateway.messages import read_restrictions, read_trace_request, text
from gateway.model import (
    NS,
    Acknowledged,
    Acknowledgement,
    Header,
    Route,
    Rule,
    Trace,
    TraceRequestInfo,
    TraceStatus,
)
from gateway.routing.rules import route
from gateway.routing.table import RoutingTable
from gateway.store import Transaction

_T = f"{{{NS}}}"
REASONED = {"DelayNotice": "Reason", "Refusal": "Reason"}

STATUS_PAGE_LIMIT = 1000  # traces per StatusReport (and the largest Limit): about 350 bytes each, far inside 1 MiB


@dataclass
class Decision:
    """The effects of one accepted message: the trace as it now stands and the messages to send."""

    trace: Trace | None
    new_trace: bool = False
    messages: list[tuple[str, str, etree._Element]] = field(default_factory=list)
    rule: str | None = None
    routed_to: str | None = None
    settle: frozenset[str] = frozenset()  # pending deadline notices this message makes moot
    plan: tuple[PlannedNotice, ...] = ()  # deadline notices it schedules


def _require_complete(request: TraceRequestInfo) -> None:
    """INCOMPLETE unless every essential item is there or the request says why not (8.3.2)."""
    if request.missing_items and not request.justified:
        raise Refused(
            ErrorCode.INCOMPLETE,
            "Missing essential items (ISACS 05.31, 6.3 and 8.2.1): " + ", ".join(request.missing_items) + ".",
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


async def decide(
    tx: Transaction,
    root: etree._Element,
    header: Header,
    kind: str,
    body: bytes,
    *,
    table: RoutingTable,
    policy: DeadlinePolicy,
    now: datetime,
) -> Decision:
    """The decision on one verified message, or `Refused`."""
    if kind == "TraceRequest":
        request = read_trace_request(root)
        if header.trace_id is None and request.resubmits is None:
            return await _open_trace(tx, request, body, table=table, policy=policy, now=now)
        return await _resubmit(tx, request, body, table=table, policy=policy, now=now)
    if kind == "StatusQuery":
        return await _status(tx, root, header, now)
    lifecycle.require_kind(kind)
    _require_reason(root, kind)
    trace = await _trace_of(tx, header, kind)
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
        messages=[("Delivery", transition.recipient, relay), ("Receipt", header.sender, receipt)],
        rule=Rule.REPLY.value,
        routed_to=transition.recipient,
        settle=frozenset(settled_by(kind, policy, implies_acknowledgement=transition.implies_acknowledgement)),
    )


async def _trace_of(tx: Transaction, header: Header, kind: str) -> Trace:
    """The trace a message names, or UNKNOWN_TRACE (in the words `lifecycle.apply` uses for a trace the sender is
    no party to: the same one read either way, so neither the answer nor its timing tells the two apart)."""
    if header.trace_id is None:
        raise Refused(ErrorCode.UNKNOWN_TRACE, f"{article(kind)} must name its trace in Header/TraceId")
    trace = await tx.get_trace(header.trace_id)
    if trace is None:
        raise lifecycle.unknown_trace(header.trace_id, header.sender)
    return trace


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


async def _open_trace(
    tx: Transaction,
    request: TraceRequestInfo,
    body: bytes,
    *,
    table: RoutingTable,
    policy: DeadlinePolicy,
    now: datetime,
) -> Decision:
    """A first request: check it is complete, route it, start its clocks."""
    _require_complete(request)
    chosen = route(request, table)
    trace_id = request.header.message_id
    if await tx.get_trace(trace_id) is not None:
        raise Refused(ErrorCode.INVALID_STATE, "this MessageId already opened a trace; a new request needs a new one")
    deadlines = plan(now, policy)
    trace = Trace(
        trace_id=trace_id,
        requester=request.header.sender,
        party=chosen.party,
        destination=chosen.on_behalf_of or chosen.party,
        rule=chosen.rule,
        table_version=chosen.table_version,
        status=TraceStatus.DELIVERED,
        deadlines=deadlines,
        opened_at=now,
        updated_at=now,
        confidentiality=request.confidentiality,
        current_request_id=trace_id,
    )
    return _request_decision(trace, chosen, request, body, now, new=True, policy=policy)


async def _resubmit(
    tx: Transaction,
    request: TraceRequestInfo,
    body: bytes,
    *,
    table: RoutingTable,
    policy: DeadlinePolicy,
    now: datetime,
) -> Decision:
    """A request resubmitted after a return for completion (8.3.2): same trace, fresh clocks."""
    header = request.header
    if header.trace_id is None or request.resubmits is None:
        raise Refused(
            ErrorCode.INVALID_STATE,
            "a resubmission names its trace in Header/TraceId and the returned request in Resubmits",
        )
    trace = await _trace_of(tx, header, "TraceRequest")
    lifecycle.apply(trace, "TraceRequest", header.sender)
    if request.resubmits != trace.current_request_id:
        raise Refused(ErrorCode.INVALID_STATE, "Resubmits does not name the request that was returned")
    _require_complete(request)
    updated = dataclasses.replace(
        trace,
        status=TraceStatus.RESUBMITTED,
        deadlines=plan(now, policy),
        updated_at=now,
        confidentiality=request.confidentiality,
        current_request_id=header.message_id,
        acknowledged=None,  # the resubmitted request awaits its own acknowledgement
    )
    chosen = Route(
        origin=header.sender,
        party=trace.party,
        rule=trace.rule,
        table_version=table.version,
        on_behalf_of=trace.destination if trace.destination != trace.party else None,
    )
    return _request_decision(updated, chosen, request, body, now, new=False, policy=policy)


def _request_decision(
    trace: Trace,
    chosen: Route,
    request: TraceRequestInfo,
    body: bytes,
    now: datetime,
    *,
    new: bool,
    policy: DeadlinePolicy,
) -> Decision:
    """The `Delivery` to the requested party and the `Receipt` to the requester."""
    relay = compose.delivery(
        now=now,
        trace_id=trace.trace_id,
        route=chosen,
        recipient=chosen.party,
        payload=body,
        deadlines=trace.deadlines,
        confidentiality=request.confidentiality,
    )
    receipt = compose.receipt(
        now=now,
        trace_id=trace.trace_id,
        accepted_id=request.header.message_id,
        status=trace.status.value,
        routed_to=chosen.party,
        rule=chosen.rule.value,
        deadlines=trace.deadlines,
    )
    return Decision(
        trace=trace,
        new_trace=new,
        messages=[("Delivery", chosen.party, relay), ("Receipt", trace.requester, receipt)],
        rule=chosen.rule.value,
        routed_to=chosen.party,
        settle=frozenset() if new else ALL_NOTICES,
        plan=notices_for(trace.deadlines, policy),
    )


async def _status(tx: Transaction, root: etree._Element, header: Header, now: datetime) -> Decision:
    """A `StatusReport` of the asking state's own traces (the iARMS monitor).

    A query naming a trace reads that trace among the asker's own, and applies the filters to it after: one read,
    whether the trace is unknown or another's (both refused alike), and the asker's own trace filtered out is an
    empty report, not a refusal."""
    since_text = text(root, "Since")
    role, status = text(root, "Role"), text(root, "Status")
    since = datetime.fromisoformat(since_text.replace("Z", "+00:00")) if since_text else None
    limit = int(text(root, "Limit") or STATUS_PAGE_LIMIT)
    after_id, after = text(root, "After"), None
    if after_id:
        known = await tx.traces_of(header.sender, trace_id=after_id)
        if not known:
            raise lifecycle.unknown_trace(after_id, header.sender)
        after = known[0]
    if header.trace_id:
        found = await tx.traces_of(header.sender, trace_id=header.trace_id, after=after)
        if not found and after is None:
            raise lifecycle.unknown_trace(header.trace_id, header.sender)
        found = [t for t in found if _matches(t, header.sender, role, status, since)]
    else:
        found = await tx.traces_of(header.sender, role=role, status=status, since=since, after=after, limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    lines = [
        compose.StatusLine(
            trace_id=t.trace_id,
            role="outgoing" if t.requester == header.sender else "incoming",
            counterpart=t.counterpart(header.sender),
            status=t.status.value,
            deadlines=t.deadlines,
            overdue=is_overdue(t.status.value, t.deadlines, now),
            acknowledged=t.acknowledged,
        )
        for t in found
    ]
    report = compose.status_report(now=now, lines=lines, next_after=found[-1].trace_id if more else None)
    return Decision(trace=None, messages=[("StatusReport", header.sender, report)])


def _matches(trace: Trace, state: str, role: str | None, status: str | None, since: datetime | None) -> bool:
    """Whether one of `state`'s traces passes a StatusQuery's filters (as `select_traces` applies them)."""
    if (role == "outgoing" and trace.requester != state) or (role == "incoming" and trace.party != state):
        return False
    if status and trace.status.value != status:
        return False
    return since is None or trace.updated_at >= since
