"""Deadline rows against the records, both ways. No I/O.

A `trace` record lists the notices its message planned (kind, when it fires, when the deadline falls due) and the
kinds of pending notice it settled; a `deadline` record says which row fired. Replayed in chain order, they give
every row the trace should have, with its times, its status and when it was settled, exactly as the store writes
them (a message settles what was pending before its own plan; a fired notice is settled no more). Rows are paired
with planned notices by (kind, fire time, due time) in id order, so a row whose times were moved pairs with nothing.

Traces whose records predate `rules.FULL_TRACE_STATE` do not list their notices: their rows are not checked.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway.audit.walk import Event
from gateway.core import chain as rules


@dataclass
class _Notice:
    """A notice as the records make it."""

    seq: int  # the record that planned it
    kind: str
    fire_at: datetime
    due_at: datetime
    status: str = "pending"
    settled_at: datetime | None = None
    by: int = 0  # the record that settled or fired it
    row: Any = None  # the deadline row paired with it


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _at(value: datetime | None) -> str:
    """A stored time as an auditor reads it."""
    moment = _aware(value)
    return rules.when(moment) if moment is not None else "never"


def _key(row: Any) -> tuple[str, datetime | None, datetime | None]:
    """What pairs a row with a planned notice."""
    return row.kind, _aware(row.fire_at), _aware(row.due_at)


def check_deadlines(events: dict[str, list[Event]], partial: set[str], rows: Iterable[Any]) -> list[str]:
    """Every deadline row (in id order) against what the records say of its trace's notices."""
    by_trace: dict[str, list[Any]] = {}
    for row in rows:
        by_trace.setdefault(row.trace_id, []).append(row)
    problems: list[str] = []
    for trace_id in sorted(by_trace.keys() | events.keys()):
        if trace_id not in partial:
            problems += _trace(trace_id, events.get(trace_id, []), by_trace.get(trace_id, []))
    return problems


def _planned(trace_id: str, events: Sequence[Event]) -> tuple[list[_Notice], list[str]]:
    """The notices the records planned, in chain order."""
    notices: list[_Notice] = []
    problems: list[str] = []
    for event in events:
        if event[0] != "plan":
            continue
        try:
            notices += [_Notice(event[1], str(k), rules.parse_at(f), rules.parse_at(d)) for k, f, d in event[2]]
        except (TypeError, ValueError):
            problems.append(f"record {event[1]}: the notices it plans for trace {trace_id} cannot be read")
    return notices, problems


def _replay(
    trace_id: str, events: Sequence[Event], notices: list[_Notice], rows: list[Any]
) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """Settle and fire the notices as the records say, in chain order; also the `deadline` records whose row is
    missing."""
    problems: list[str] = []
    gone: list[tuple[int, dict[str, Any]]] = []
    by_id = {n.row.id: n for n in notices if n.row is not None}
    row_ids = {row.id for row in rows}
    planned = 0
    for event in events:
        kind, seq = event[0], event[1]
        if kind == "plan":
            planned += len(event[2])
        elif kind == "settle":
            kinds, at = set(event[2].get("kinds", ())), rules.parse_at(str(event[2].get("at")))
            for n in notices[:planned]:
                if n.status == "pending" and n.kind in kinds:
                    n.status, n.settled_at, n.by = "cancelled", at, seq
        else:
            data, at = event[2], rules.parse_at(event[3])
            fired = by_id.get(data.get("deadline_id"))
            if fired is None:
                if data.get("deadline_id") not in row_ids:  # a row whose times were moved is named as such
                    gone.append((seq, data))
                continue
            if fired.status != "pending" or data.get("kind") != fired.kind:
                problems.append(
                    f"record {seq}: fires deadline row {fired.row.id} ({fired.kind} of trace {trace_id}), "
                    f"which the records had {fired.status} (record {fired.by or fired.seq})"
                )
            fired.status, fired.settled_at, fired.by = "fired", at, seq
    return problems, gone


def _trace(trace_id: str, events: Sequence[Event], rows: list[Any]) -> list[str]:
    """One trace's deadline rows against its records."""
    try:
        notices, problems = _planned(trace_id, events)
        waiting: dict[tuple[str, datetime | None, datetime | None], deque[Any]] = {}
        for row in rows:
            waiting.setdefault(_key(row), deque()).append(row)
        for n in notices:
            queue = waiting.get((n.kind, n.fire_at, n.due_at))
            if queue:
                n.row = queue.popleft()
        replayed, gone = _replay(trace_id, events, notices, rows)
        problems += replayed
    except (AttributeError, TypeError, ValueError) as err:  # an edited record: its hash names it
        return [f"trace {trace_id}: the records of its deadline notices cannot be read ({err})"]
    for n in notices:
        row = n.row
        if row is None:
            continue
        where = f"deadline row {row.id} ({n.kind} of trace {trace_id})"
        if row.status != n.status:
            problems.append(f"record {n.by or n.seq}: {where} is {row.status}, but the records make it {n.status}")
        elif _aware(row.settled_at) != n.settled_at:
            problems.append(f"record {n.by or n.seq}: {where} was settled {_at(row.settled_at)}, not when it says")
    left = sorted((r for queue in waiting.values() for r in queue), key=lambda r: r.id)
    for n in (n for n in notices if n.row is None):
        moved = next((r for r in left if r.kind == n.kind), None)
        if moved is not None:
            left.remove(moved)
            problems.append(
                f"record {n.seq}: deadline row {moved.id} ({n.kind} of trace {trace_id}) falls due "
                f"{_at(moved.due_at)} and fires {_at(moved.fire_at)}, but this record planned it due "
                f"{rules.when(n.due_at)}, firing {rules.when(n.fire_at)}: its times were changed"
            )
            continue
        fired = next((g for g in gone if g[1].get("kind") == n.kind and _due(g[1]) == n.due_at), None)
        if fired is not None:
            gone.remove(fired)
        said = f" (record {fired[0]} fired it as row {fired[1].get('deadline_id')})" if fired else ""
        problems.append(
            f"record {n.seq}: planned a {n.kind} notice of trace {trace_id} due {rules.when(n.due_at)}{said}, but no "
            "deadline row holds it (deleted)"
        )
    problems += [
        f"record {seq}: says deadline row {data.get('deadline_id')} ({data.get('kind')} of trace {trace_id}) fired, "
        "but the row is missing (deleted)"
        for seq, data in gone
    ]
    problems += [
        f"deadline row {row.id} ({row.kind} of trace {trace_id}, due {_at(row.due_at)}) was planned by no record "
        "(inserted behind the gateway's back)"
        for row in left
    ]
    return problems


def _due(data: dict[str, Any]) -> datetime | None:
    """The due time a `deadline` record names."""
    try:
        return rules.parse_at(str(data.get("due_at")))
    except ValueError:
        return None
