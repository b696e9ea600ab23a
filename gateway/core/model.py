"""The domain's values: frozen dataclasses for messages, traces, routes and deadlines. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

GATEWAY = "GATEWAY"
NS = "urn:itrace:1"
MAX_MESSAGE_BYTES = 1_048_576  # the contract's cap on a message, either way (section 2; configurable)


class TraceStatus(StrEnum):
    """A trace's state in the lifecycle of contract section 6."""

    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    RETURNED = "returned"
    RESUBMITTED = "resubmitted"
    DELAYED = "delayed"
    RESPONDED = "responded"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class Acknowledgement(StrEnum):
    """How the requested state acknowledged a request (8.3.1): by an `Acknowledgement`, or implied by its answer."""

    EXPLICIT = "explicit"
    IMPLIED = "implied"


class Rule(StrEnum):
    """Why a message went where it went (contract section 5, `Route/Rule`)."""

    EXPORT_RECORD = "export-record"
    IMPORT_MARK = "import-mark"
    MANUFACTURE = "manufacture"
    REPLY = "reply"


@dataclass(frozen=True)
class Header:
    """`Header` of every message."""

    message_id: str
    created_at: datetime
    sender: str
    trace_id: str | None


@dataclass(frozen=True)
class ImportMark:
    """`Firearm/ImportMark`: the importing state's mark (6.4.2)."""

    state: str
    year: int | None


@dataclass(frozen=True)
class ExportRecord:
    """`TraceRequest/ExportRecord`: a transfer found in the requesting state's records (8.1 a)."""

    exporting_state: str
    importing_state: str
    date: date


@dataclass(frozen=True)
class Confidentiality:
    """`Confidentiality`: whether the requesting state can keep the answer confidential (8.4)."""

    guaranteed: bool
    reason: str | None = None


@dataclass(frozen=True)
class TraceRequestInfo:
    """What routing and the completeness check need from a `TraceRequest`."""

    header: Header
    item: str  # "Firearm" or "Ammunition"
    country_of_manufacture: str | None
    import_marks: tuple[ImportMark, ...]
    export_records: tuple[ExportRecord, ...]
    missing_items: tuple[str, ...]
    justified: bool
    confidentiality: Confidentiality
    resubmits: str | None


@dataclass(frozen=True)
class Restrictions:
    """`Restrictions` of a response (8.3.4.2 d-f): codes and an optional free text."""

    codes: tuple[str, ...]
    text: str | None = None


@dataclass(frozen=True)
class Route:
    """Where a message goes and the rule that chose it."""

    origin: str
    party: str  # the NPC that receives it (a delegate where the table delegates)
    rule: Rule
    table_version: str
    on_behalf_of: str | None = None  # the routed state when a delegate receives for it


@dataclass(frozen=True)
class Deadlines:
    """When the requested state must acknowledge and respond (8.3.1, 8.3.4.1)."""

    acknowledge_by: datetime
    respond_by: datetime


@dataclass(frozen=True)
class Acknowledged:
    """When the requested state acknowledged the trace's current request, by which message, and how: an answer
    (`TraceResponse`, `Refusal`, `DelayNotice`) sent before any `Acknowledgement` implies it."""

    at: datetime
    message_id: str
    how: Acknowledgement


@dataclass(frozen=True)
class Trace:
    """One trace: the conversation a `TraceRequest` opened."""

    trace_id: str
    requester: str
    party: str
    destination: str
    rule: Rule
    table_version: str
    status: TraceStatus
    deadlines: Deadlines
    opened_at: datetime
    updated_at: datetime
    confidentiality: Confidentiality
    restrictions: Restrictions | None = None
    delay_reason: str | None = None
    delay_expected_by: date | None = None
    current_request_id: str = ""
    acknowledged: Acknowledged | None = None  # of the current request; None until acknowledged (or not recorded)

    def counterpart(self, state: str) -> str:
        """The other party of the trace, seen from `state`."""
        return self.party if state == self.requester else self.requester


def trace_fields(trace: Trace) -> dict[str, Any]:
    """A trace as a flat mapping of plain values, one per stored column (restrictions as the value object): what
    the store writes and what administrators' views format."""
    ack = trace.acknowledged
    return {
        "trace_id": trace.trace_id,
        "requester": trace.requester,
        "party": trace.party,
        "destination": trace.destination,
        "rule": trace.rule.value,
        "table_version": trace.table_version,
        "status": trace.status.value,
        "acknowledge_by": trace.deadlines.acknowledge_by,
        "respond_by": trace.deadlines.respond_by,
        "opened_at": trace.opened_at,
        "updated_at": trace.updated_at,
        "confidentiality_guaranteed": trace.confidentiality.guaranteed,
        "confidentiality_reason": trace.confidentiality.reason,
        "restrictions": trace.restrictions,
        "delay_reason": trace.delay_reason,
        "delay_expected_by": trace.delay_expected_by,
        "current_request_id": trace.current_request_id,
        "acknowledged_at": ack.at if ack else None,
        "acknowledged_by": ack.message_id if ack else None,
        "acknowledgement": ack.how.value if ack else None,
    }
