"""Builds the gateway's own messages (contract section 4.2) as elements, ready for the gateway's signature."""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from lxml import etree

from gateway.core.model import (
    GATEWAY,
    NS,
    Acknowledged,
    Acknowledgement,
    Confidentiality,
    Deadlines,
    Restrictions,
    Route,
)

_T = f"{{{NS}}}"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


# What signing adds to a composed message at most: the enveloped signature with the gateway's certificate, with
# room to spare for any key the profile allows (docs/performance.md, "Figures that used to sit beside constants").
SIGNATURE_ALLOWANCE = 8192


def signed_size_bound(root: etree._Element) -> int:
    """An upper bound on the signed size of a composed message, without serialising a `Payload`'s base64 twice."""
    payload = root.find(f"{{{NS}}}Payload")
    if payload is None or not payload.text:
        return len(etree.tostring(root)) + SIGNATURE_ALLOWANCE
    text, payload.text = payload.text, None
    try:
        return len(etree.tostring(root)) + len(text) + SIGNATURE_ALLOWANCE
    finally:
        payload.text = text


def relayable_bytes(max_bytes: int) -> int:
    """The largest message whose `Delivery` fits in `max_bytes`, for a route with no restrictions text (base64
    makes 4 bytes of 3; the Delivery's own elements and its signature take the rest)."""
    return (max_bytes - SIGNATURE_ALLOWANCE - 2048) // 4 * 3


@lru_cache(maxsize=256)
def stamp(moment: datetime) -> str:
    """An `xs:dateTime` in UTC with a `Z`, to the millisecond (remembered: a message's answers share moments)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_message_id() -> str:
    """A fresh `MessageId`."""
    return str(uuid.uuid4())


def sub(parent: etree._Element, name: str, value: str | None = None, **attrs: str) -> etree._Element:
    """Append a namespaced child with optional text and attributes."""
    child = etree.SubElement(parent, _T + name, attrs)
    if value is not None:
        child.text = value
    return child


def message_root(
    kind: str, *, sender: str, now: datetime, trace_id: str | None = None, message_id: str | None = None
) -> etree._Element:
    """A contract message's root element with its `Header` (a fresh MessageId unless given)."""
    root = etree.Element(_T + kind, nsmap={"t": NS})
    header = sub(root, "Header")
    sub(header, "MessageId", message_id or new_message_id())
    sub(header, "CreatedAt", stamp(now))
    sub(header, "Sender", sender)
    if trace_id:
        sub(header, "TraceId", trace_id)
    return root


def gateway_root(kind: str, now: datetime, trace_id: str | None, message_id: str | None = None) -> etree._Element:
    """A root element of the gateway's with its `Header`."""
    return message_root(kind, sender=GATEWAY, now=now, trace_id=trace_id, message_id=message_id)


def _deadlines(parent: etree._Element, deadlines: Deadlines) -> None:
    """`Deadlines` with both due times."""
    element = sub(parent, "Deadlines")
    sub(element, "AcknowledgeBy", stamp(deadlines.acknowledge_by))
    sub(element, "RespondBy", stamp(deadlines.respond_by))


def _restrictions(parent: etree._Element, restrictions: Restrictions) -> None:
    """`Restrictions` lifted from a response."""
    element = sub(parent, "Restrictions")
    for code in restrictions.codes:
        sub(element, "Restriction", code=code)
    if restrictions.text:
        sub(element, "Text", restrictions.text)


def delivery(
    *,
    now: datetime,
    trace_id: str,
    route: Route,
    recipient: str,
    payload: bytes,
    deadlines: Deadlines | None = None,
    confidentiality: Confidentiality | None = None,
    restrictions: Restrictions | None = None,
) -> etree._Element:
    """`Delivery`: a relayed message, its route, and what the recipient must not miss."""
    root = gateway_root("Delivery", now, trace_id)
    r = sub(root, "Route")
    sub(r, "From", route.origin)
    sub(r, "To", recipient)
    if route.on_behalf_of:
        sub(r, "For", route.on_behalf_of)
    sub(r, "Rule", route.rule.value)
    sub(r, "RoutingTableVersion", route.table_version)
    if deadlines:
        _deadlines(root, deadlines)
    if confidentiality is not None and not confidentiality.guaranteed:
        c = sub(root, "Confidentiality", guaranteed="false")
        if confidentiality.reason:
            sub(c, "Reason", confidentiality.reason)
    if restrictions:
        _restrictions(root, restrictions)
    sub(root, "Payload", base64.b64encode(payload).decode("ascii"), mediaType="application/xml")
    return root


def receipt(
    *,
    now: datetime,
    trace_id: str | None,
    accepted_id: str,
    status: str,
    routed_to: str | None = None,
    rule: str | None = None,
    deadlines: Deadlines | None = None,
) -> etree._Element:
    """`Receipt`: the sender's message was accepted; the trace's status now (a register record's, for a report or
    a withdrawal, which names no trace)."""
    root = gateway_root("Receipt", now, trace_id)
    sub(root, "AcceptedMessageId", accepted_id)
    sub(root, "Status", status)
    if routed_to:
        sub(root, "RoutedTo", routed_to)
    if rule:
        sub(root, "Rule", rule)
    if deadlines:
        _deadlines(root, deadlines)
    return root


def rejection(
    *, now: datetime, rejected_id: str | None, code: str, detail: str, trace_id: str | None = None
) -> etree._Element:
    """`Rejection`: the sender's message was refused, with the contract's code and why."""
    root = gateway_root("Rejection", now, trace_id)
    if rejected_id and _UUID.match(rejected_id):  # an unreadable id is left out, never echoed
        sub(root, "RejectedMessageId", rejected_id)
    sub(root, "Code", code)
    sub(root, "Detail", detail[:1000])
    return root


def deadline_notice(*, now: datetime, trace_id: str, kind: str, due_at: datetime) -> etree._Element:
    """`DeadlineNotice`: a reminder before, or a notice after, a deadline of the trace."""
    root = gateway_root("DeadlineNotice", now, trace_id)
    sub(root, "Kind", kind)
    sub(root, "DueAt", stamp(due_at))
    return root


@dataclass(frozen=True)
class StatusLine:
    """One `StatusReport/Trace`, seen from the state that asked."""

    trace_id: str
    role: str
    counterpart: str
    status: str
    deadlines: Deadlines | None
    overdue: bool
    acknowledged: Acknowledged | None = None


def status_report(*, now: datetime, lines: list[StatusLine], next_after: str | None = None) -> etree._Element:
    """`StatusReport`: the asking state's own traces; `Acknowledged` (an optional addition) says when the current
    request was acknowledged, and `implied="true"` when its answer implied the acknowledgement; `Next` (another)
    names the trace to ask `After` for the next page, when there is one."""
    root = gateway_root("StatusReport", now, None)
    for line in lines:
        element = sub(root, "Trace")
        sub(element, "TraceId", line.trace_id)
        sub(element, "Role", line.role)
        sub(element, "Counterpart", line.counterpart)
        sub(element, "Status", line.status)
        if line.deadlines:
            sub(element, "AcknowledgeBy", stamp(line.deadlines.acknowledge_by))
            sub(element, "RespondBy", stamp(line.deadlines.respond_by))
        sub(element, "Overdue", "true" if line.overdue else "false")
        if line.acknowledged:
            implied = line.acknowledged.how is Acknowledgement.IMPLIED
            sub(element, "Acknowledged", stamp(line.acknowledged.at), implied="true" if implied else "false")
    if next_after:
        sub(root, "Next", next_after)
    return root
