"""Rows and values: a `Trace` from its row and back, outbox rows, and the audit entries a write adds."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Row

from gateway.core import chain as audit_rules
from gateway.core.effects import Effects, InboundRecord, OutboxMessage
from gateway.core.model import (
    Acknowledged,
    Acknowledgement,
    Confidentiality,
    Deadlines,
    Restrictions,
    Rule,
    Trace,
    TraceStatus,
    trace_fields,
)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def trace_from_row(row: Any) -> Trace:
    """A `Trace` from its row (SQLAlchemy's, or one the driver read: see `bulk.Fetched`)."""
    m = row._mapping
    restrictions = None
    if m["restrictions"]:
        raw = json.loads(m["restrictions"])
        restrictions = Restrictions(codes=tuple(raw["codes"]), text=raw.get("text"))
    acknowledged = None
    if m["acknowledgement"]:
        acknowledged = Acknowledged(
            aware(m["acknowledged_at"]),  # type: ignore[arg-type]
            m["acknowledged_by"],
            Acknowledgement(m["acknowledgement"]),
        )
    return Trace(
        trace_id=m["trace_id"],
        requester=m["requester"],
        party=m["party"],
        destination=m["destination"],
        rule=Rule(m["rule"]),
        table_version=m["table_version"],
        status=TraceStatus(m["status"]),
        deadlines=Deadlines(aware(m["acknowledge_by"]), aware(m["respond_by"])),  # type: ignore[arg-type]
        opened_at=aware(m["opened_at"]),  # type: ignore[arg-type]
        updated_at=aware(m["updated_at"]),  # type: ignore[arg-type]
        confidentiality=Confidentiality(m["confidentiality_guaranteed"], m["confidentiality_reason"]),
        restrictions=restrictions,
        delay_reason=m["delay_reason"],
        delay_expected_by=date.fromisoformat(m["delay_expected_by"]) if m["delay_expected_by"] else None,
        current_request_id=m["current_request_id"],
        acknowledged=acknowledged,
    )


def trace_values(trace: Trace) -> dict[str, Any]:
    """Column values of a `Trace`: restrictions as JSON, the expected date of a delay as ISO text."""
    values = trace_fields(trace)
    r, expected = trace.restrictions, trace.delay_expected_by
    values["restrictions"] = json.dumps({"codes": list(r.codes), "text": r.text}) if r else None
    values["delay_expected_by"] = expected.isoformat() if expected else None
    return values


def message_in(record: InboundRecord, inbound_id: int) -> audit_rules.Entry:
    """The audit entry of a received message and the decision on it."""
    decision = {k: v for k, v in record.__dict__.items() if k not in {"body", "sha256", "received_at"}}
    return audit_rules.Entry(
        audit_rules.RecordType.MESSAGE_IN,
        record.received_at,
        {"inbound_id": inbound_id, **decision},
        record.trace_id,
        record.sha256,
    )


# Every column of the trace's row but its key (the record's trace) and `updated_at` (the record's time): `audit
# verify` holds the row to its last record column by column (`current_request_id` marks a record holding them all).
TRACE_STATE = (
    "status",
    "requester",
    "party",
    "destination",
    "rule",
    "table_version",
    "acknowledge_by",
    "respond_by",
    "restrictions",
    "delay_reason",
    "opened_at",
    "confidentiality_guaranteed",
    "confidentiality_reason",
    "delay_expected_by",
    "current_request_id",
    "acknowledged_at",
    "acknowledged_by",
    "acknowledgement",
)


def trace_entry(e: Effects, values: dict[str, Any]) -> audit_rules.Entry:
    """The audit entry of a trace's new state, with the deadline notices the message settled and planned (so `audit
    verify` can hold every deadline row to the records: which notices, due and fired when, cancelled when)."""
    trace = e.trace
    assert trace is not None
    state: dict[str, Any] = {"new": e.new_trace, **{k: values[k] for k in TRACE_STATE}}
    if e.settle:
        state["settled"] = {"kinds": sorted(e.settle), "at": e.when}
    if e.plan:
        state["notices"] = [[p.kind.value, p.fire_at, p.due_at] for p in e.plan]
    return audit_rules.Entry(audit_rules.RecordType.TRACE, trace.updated_at, state, trace.trace_id)


def message_out(m: OutboxMessage, outbox_id: int, inbound_id: int | None, now: datetime) -> audit_rules.Entry:
    """The audit entry of a gateway message queued for sending."""
    return audit_rules.Entry(
        audit_rules.RecordType.MESSAGE_OUT,
        now,
        {
            "outbox_id": outbox_id,
            "message_id": m.message_id,
            "recipient": m.recipient,
            "kind": m.kind,
            "inbound_id": inbound_id,
            "queue": m.queue,
        },
        m.trace_id,
        hashlib.sha256(m.body).hexdigest(),
    )


def outbox_row(m: OutboxMessage, inbound_id: int | None, now: datetime) -> dict[str, Any]:
    """Column values of an outbox row."""
    return {
        "message_id": m.message_id,
        "recipient": m.recipient,
        "queue": m.queue,
        "kind": m.kind,
        "trace_id": m.trace_id,
        "inbound_id": inbound_id,
        "body": m.body,
        "created_at": now,
    }


def outbox_from_row(row: Row[Any]) -> OutboxMessage:
    """An `OutboxMessage` from its row."""
    m = row._mapping
    return OutboxMessage(
        id=m["id"],
        message_id=m["message_id"],
        recipient=m["recipient"],
        queue=m["queue"],
        kind=m["kind"],
        trace_id=m["trace_id"],
        body=m["body"],
        inbound_id=m["inbound_id"],
    )
