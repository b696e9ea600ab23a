"""What administrators read: traces as a table, CSV or JSON, and one trace's conversation."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from gateway.core.deadlines import is_overdue
from gateway.core.model import Trace, trace_fields
from gateway.store.reads import Entry

COLUMNS = (
    "trace_id",
    "requester",
    "party",
    "destination",
    "rule",
    "status",
    "acknowledge_by",
    "respond_by",
    "overdue",
    "opened_at",
    "updated_at",
    "confidentiality_guaranteed",
    "restrictions",
    "delay_reason",
    "delay_expected_by",
    "acknowledged_at",
    "acknowledgement",
    "acknowledged_by",
)


def trace_record(trace: Trace, now: datetime) -> dict[str, Any]:
    """A flat, JSON-ready record of a trace (the `COLUMNS`), with whether it is overdue now."""
    values = trace_fields(trace)
    r = trace.restrictions
    values["restrictions"] = " ".join(r.codes) + (f" ({r.text})" if r.text else "") if r else ""
    values["overdue"] = is_overdue(trace.status.value, trace.deadlines, now)
    # explicit | implied (by an answer sent first); a missing value shows as ""
    return {c: _plain(values[c]) for c in COLUMNS}


def _plain(value: Any) -> Any:
    """Times and dates as ISO text, absent values as ""."""
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else value


def render_traces(records: list[dict[str, Any]], fmt: str) -> str:
    """Traces as `csv`, `json` or a `table` for a terminal."""
    if fmt == "json":
        return json.dumps(records, indent=2)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(records)
        return out.getvalue()
    table = Table(title=f"{len(records)} trace(s)")
    for column in ("trace_id", "requester", "party", "rule", "status", "acknowledge_by", "respond_by", "overdue"):
        table.add_column(column)
    for r in records:
        table.add_row(
            r["trace_id"],
            r["requester"],
            r["party"],
            r["rule"],
            r["status"],
            r["acknowledge_by"][:16],
            r["respond_by"][:16],
            "yes" if r["overdue"] else "",
        )
    return _to_text(table)


def render_conversation(record: dict[str, Any], entries: list[Entry], fmt: str) -> str:
    """One trace: its state, deadlines and acknowledgement, then every step in order."""
    if fmt == "json":
        return json.dumps({"trace": record, "conversation": [e.as_dict() for e in entries]}, indent=2)
    head = (
        f"trace {record['trace_id']}: {record['requester']} → {record['party']} by {record['rule']}, "
        f"status {record['status']}{' (OVERDUE)' if record['overdue'] else ''}\n"
        f"acknowledge by {record['acknowledge_by'][:19]}Z, respond by {record['respond_by'][:19]}Z\n"
        + _acknowledged(record)
        + f"confidentiality guaranteed: {record['confidentiality_guaranteed']}"
        + (f"\nrestrictions: {record['restrictions']}" if record["restrictions"] else "")
        + (
            f"\ndelayed: {record['delay_reason']}, expected by {record['delay_expected_by']}"
            if record["delay_reason"]
            else ""
        )
    )
    table = Table()
    for column in ("at", "", "message", "party", "outcome", "detail"):
        table.add_column(column, overflow="fold")
    arrows = {"in": "→ in", "out": "← out", "deadline": "⏰"}
    for e in entries:
        table.add_row(e.at.isoformat(timespec="seconds"), arrows[e.direction], e.kind, e.party, e.outcome, e.detail)
    return head + "\n" + _to_text(table)


def _acknowledged(record: dict[str, Any]) -> str:
    """The head's acknowledgement line ("" while the request is not acknowledged)."""
    if not record["acknowledgement"]:
        return ""
    how = "implied: the answer came first" if record["acknowledgement"] == "implied" else "explicit"
    return f"acknowledged {record['acknowledged_at'][:19]}Z by message {record['acknowledged_by']} ({how})\n"


def _to_text(table: Table) -> str:
    """Render a rich table to plain text."""
    buffer = io.StringIO()
    Console(file=buffer, width=160, color_system=None).print(table)
    return buffer.getvalue()
