"""What a register message decides, and the hits a trace request makes (contract 4.3). Pure: `core.decide` calls
these with its view of the batch (the snapshot as the batch's earlier messages left it)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from lxml import etree

from gateway.core.model import Header
from gateway.core.requests import Decision, Unsigned
from gateway.records.matching import Makes, shape_key
from gateway.records.register import (
    RegisterRecord,
    hits_for,
    matches,
    report,
    require_serial,
    withdraw,
)
from gateway.xml import compose
from gateway.xml.records import firearm_of, hit_notice, read_report, read_withdrawal, record_query_result

RECORD_KINDS = frozenset({"RecordReport", "RecordWithdrawal", "RecordQuery"})


class RegisterView(Protocol):
    """The register as a batch has left it so far."""

    def record(self, key: tuple[str, str]) -> RegisterRecord | None:
        """The record of (state, reference), withdrawn or not."""
        ...

    def holders(self, reference: str) -> set[str]:
        """The states holding a record of this reference."""
        ...

    def candidates(self, shape: str) -> list[RegisterRecord]:
        """The active records whose serial folds to `shape`."""
        ...

    def hit(self, key: tuple[str, str, str]) -> bool:
        """Whether (state, reference, trace) hit already."""
        ...


def decide_register(
    view: RegisterView, root: etree._Element, header: Header, kind: str, now: datetime, makes: Makes
) -> Decision:
    """A `RecordReport` or `RecordWithdrawal` answered by a `Receipt` with the record's status; a `RecordQuery`
    by its `RecordQueryResult`."""
    sender = header.sender
    if kind == "RecordQuery":
        firearm = firearm_of(root)
        assert firearm is not None, "the schema requires Firearm"
        require_serial(firearm, kind)
        found = matches(firearm, view.candidates(shape_key(firearm.serial or "")), makes)
        result = record_query_result(now=now, query_id=header.message_id, found=found)
        return Decision(trace=None, messages=(("RecordQueryResult", sender, result),))
    if kind == "RecordReport":
        says = read_report(root)
        require_serial(says.firearm, kind)
        change = report(view.record((sender, says.reference)), sender, says, source=header.message_id, now=now)
    else:
        gone = read_withdrawal(root)
        existing = view.record((sender, gone.reference))
        change = withdraw(existing, view.holders(gone.reference), sender, gone, source=header.message_id, now=now)
    receipt = compose.receipt(now=now, trace_id=None, accepted_id=header.message_id, status=change.record.status)
    return Decision(trace=None, messages=(("Receipt", sender, receipt),), register=(change,))


def with_hits(
    view: RegisterView,
    decision: Decision,
    root: etree._Element,
    now: datetime,
    makes: Makes,
    connected: Callable[[str], bool] = lambda state: True,
) -> Decision:
    """A firearm trace request's decision with its hits: a `HitNotice` to the reporting state and to the requesting
    state for every active record its firearm matches, once per (record, trace); the routing is unchanged. A
    reporting state no longer in the routing table has no queue to be told in: its hit is recorded all the same
    (`tracegate records hits`), and the finder told."""
    trace = decision.trace
    firearm = firearm_of(root)
    shape = shape_key(firearm.serial or "") if firearm is not None else ""
    if trace is None or firearm is None or not shape:
        return decision
    candidates = view.candidates(shape)
    hits = hits_for(
        trace.trace_id,
        trace.requester,
        firearm,
        candidates,
        makes,
        known={
            (r.state, r.reference, trace.trace_id)
            for r in candidates
            if view.hit((r.state, r.reference, trace.trace_id))
        },
        now=now,
    )
    if not hits:
        return decision
    notices: list[Unsigned] = []
    for hit in hits:
        for recipient in dict.fromkeys((hit.state, hit.found_by)):  # one notice where a state finds its own record
            if connected(recipient):
                notices.append(("HitNotice", recipient, hit_notice(now=now, hit=hit)))
    return dataclasses.replace(decision, messages=decision.messages + tuple(notices), hits=tuple(hits))
