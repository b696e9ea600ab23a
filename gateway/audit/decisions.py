"""What the audit chain says was decided about one message, and how two such decisions differ (for replay)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.core import chain as rules

_IN, _TRACE, _OUT = rules.RecordType.MESSAGE_IN, rules.RecordType.TRACE, rules.RecordType.MESSAGE_OUT
_RECORD, _HIT = rules.RecordType.RECORD, rules.RecordType.HIT


@dataclass(frozen=True)
class Facts:
    """What one decision is compared on, read alike from the recorded chain and from the replay's."""

    outcome: str | None
    code: str | None = None
    rule: str | None = None
    trace_id: str | None = None
    routed_to: tuple[str, ...] = ()  # recipients of the `Delivery` it caused
    status: str | None = None  # the trace's status after it (None: no trace changed)
    party: str | None = None  # the trace's requested party after it
    answers: tuple[str, ...] = ()  # "Kind to XX" for every other message it caused
    register: tuple[str, ...] = ()  # "ZA/REF stolen v2" for every register record it changed
    hits: tuple[str, ...] = ()  # "ZA/REF exact" for every register record its firearm matched


_ASPECTS = (
    ("rule", "rule"),
    ("routed_to", "routed to"),
    ("trace_id", "trace"),
    ("status", "trace status after"),
    ("party", "trace party"),
    ("answers", "answered"),
    ("register", "register"),
    ("hits", "hits"),
)


def _show(value: object) -> str:
    """A fact in words: `none` for nothing, lists comma-separated."""
    if isinstance(value, tuple):
        return ", ".join(value) or "none"
    return "none" if value is None else str(value)


def differences(recorded: Facts, replayed: Facts) -> list[str]:
    """Each way the replayed decision differs from the recorded one, in words; empty when they agree."""
    found = []
    if (recorded.outcome, recorded.code) != (replayed.outcome, replayed.code):
        decided = [" ".join(v for v in (f.outcome, f.code) if v) or "nothing" for f in (recorded, replayed)]
        found.append(f"recorded {decided[0]}, replay {decided[1]}")
    for name, label in _ASPECTS:
        was, now = getattr(recorded, name), getattr(replayed, name)
        if was != now:
            found.append(f"{label}: recorded {_show(was)}, replay {_show(now)}")
    return found


@dataclass(frozen=True)
class Recorded:
    """One `message-in` record, its decoded data, and the facts of its transaction."""

    head: rules.Record
    data: dict[str, Any]
    facts: Facts

    @property
    def inbound_id(self) -> int:
        """The stored message's id (0 when the record does not name one)."""
        value = self.data.get("inbound_id")
        return value if isinstance(value, int) else 0


def read_decision(records: Sequence[rules.Record]) -> Recorded | None:
    """The first `message-in` among `records` with the `trace` record right after it and the messages it caused."""
    index = next((i for i, r in enumerate(records) if r.type == _IN), None)
    if index is None:
        return None
    head, after = records[index], records[index + 1 :]
    data = head.fields_or_empty()
    trace = after[0].fields_or_empty() if after and after[0].type == _TRACE else {}
    sent = [
        m
        for m in (r.fields_or_empty() for r in after if r.type == _OUT)
        if m.get("inbound_id") == data.get("inbound_id")
    ]
    own = [
        (r.type, d)
        for r, d in ((r, r.fields_or_empty()) for r in after if r.type in (_RECORD, _HIT))
        if d.get("inbound_id") == data.get("inbound_id")
    ]
    facts = Facts(
        outcome=data.get("outcome"),
        code=data.get("code"),
        rule=data.get("rule"),
        trace_id=data.get("trace_id"),
        routed_to=tuple(sorted(str(m.get("recipient")) for m in sent if m.get("kind") == "Delivery")),
        status=trace.get("status"),
        party=trace.get("party"),
        answers=tuple(sorted(f"{m.get('kind')} to {m.get('recipient')}" for m in sent if m.get("kind") != "Delivery")),
        register=tuple(
            f"{d.get('state')}/{d.get('reference')} {d.get('status')} v{d.get('version')}"
            for t, d in own
            if t == _RECORD
        ),
        hits=tuple(sorted(f"{d.get('state')}/{d.get('reference')} {d.get('score')}" for t, d in own if t == _HIT)),
    )
    return Recorded(head, data, facts)
