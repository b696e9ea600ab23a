"""A trace request decided (ISACS 05.31, 8.1 and 8.3.2): a first request routed and its clocks started, or a
resubmission after a return for completion, on the same trace with fresh clocks. Pure."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from gateway.core import lifecycle
from gateway.core.deadlines import ALL_NOTICES, DeadlinePolicy, PlannedNotice, notices_for, plan
from gateway.core.errors import ErrorCode, Refused
from gateway.core.lifecycle import article
from gateway.core.model import Header, Route, Trace, TraceRequestInfo, TraceStatus
from gateway.records.register import Hit, RegisterChange
from gateway.routing.rules import route
from gateway.routing.table import RoutingTable
from gateway.xml import compose

Lookup = Callable[[str], Trace | None]  # a trace as the batch leaves it so far
Unsigned = tuple[str, str, etree._Element]  # (kind, recipient, document): a gateway message to sign


@dataclass(frozen=True)
class Decision:
    """The effects of one accepted message: the trace as it now stands and the messages to send."""

    trace: Trace | None
    new_trace: bool = False
    messages: tuple[Unsigned, ...] = ()
    rule: str | None = None
    routed_to: str | None = None
    settle: frozenset[str] = frozenset()  # pending deadline notices this message makes moot
    plan: tuple[PlannedNotice, ...] = ()  # deadline notices it schedules
    register: tuple[RegisterChange, ...] = ()  # records it reports, updates or withdraws
    hits: tuple[Hit, ...] = ()  # records its firearm matched (a trace request's)


def _require_complete(request: TraceRequestInfo) -> None:
    """INCOMPLETE unless every essential item is there or the request says why not (8.3.2)."""
    if request.missing_items and not request.justified:
        raise Refused(
            ErrorCode.INCOMPLETE,
            "Missing essential items (ISACS 05.31, 6.3 and 8.2.1): " + ", ".join(request.missing_items) + ".",
        )


def trace_of(lookup: Lookup, header: Header, kind: str) -> Trace:
    """The trace a message names, or UNKNOWN_TRACE (in the words `lifecycle.apply` uses for a trace the sender is
    no party to: the same one read either way, so neither the answer nor its timing tells the two apart)."""
    if header.trace_id is None:
        raise Refused(ErrorCode.UNKNOWN_TRACE, f"{article(kind)} must name its trace in Header/TraceId")
    trace = lookup(header.trace_id)
    if trace is None:
        raise lifecycle.unknown_trace(header.trace_id, header.sender)
    return trace


def open_trace(
    lookup: Lookup,
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
    if lookup(trace_id) is not None:
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


def resubmit(
    lookup: Lookup,
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
    trace = trace_of(lookup, header, "TraceRequest")
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
        messages=(("Delivery", chosen.party, relay), ("Receipt", trace.requester, receipt)),
        rule=chosen.rule.value,
        routed_to=chosen.party,
        settle=frozenset() if new else ALL_NOTICES,
        plan=notices_for(trace.deadlines, policy),
    )
