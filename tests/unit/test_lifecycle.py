"""The trace state machine as a table: every (state, message type, sender role) and its outcome."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.core import lifecycle
from gateway.core.deadlines import ACKNOWLEDGEMENT_NOTICES, ALL_NOTICES, DeadlinePolicy, NoticeKind, settled_by
from gateway.core.errors import ErrorCode, Refused
from gateway.core.lifecycle import apply, unknown_trace
from gateway.core.model import Acknowledged, Acknowledgement, Confidentiality, Deadlines, Rule, Trace, TraceStatus

# Rows: message type. Columns: the trace's state, in this order:
STATES = [
    "delivered",
    "acknowledged",
    "returned",
    "resubmitted",
    "delayed",
    "responded",
    "refused",
    "withdrawn",
]
# Cell: the new state, or the refusal code (I = INVALID_STATE, N = NOT_AUTHORIZED, U = UNKNOWN_TRACE), "=" keeps
# the state. An answer in `delivered` or `resubmitted` implies the acknowledgement (docs/contract-notes.md, 13);
# a state that is no party of the trace is answered as if the trace did not exist (U, docs/contract-notes.md, 17).
FROM_REQUESTED = {
    "Acknowledgement": "acknowledged I I acknowledged I I I I",
    "ReturnForCompletion": "returned returned I returned I I I I",
    "DelayNotice": "delayed delayed I delayed delayed I I I",
    "TraceResponse": "responded responded I responded responded I I I",
    "Refusal": "refused refused I refused refused I I I",
    "Comment": "= = = = = = = I",
    "Withdrawal": "N N N N N N N N",
    "TraceRequest": "N N N N N N N N",
}
FROM_REQUESTING = {
    "Acknowledgement": "N N N N N N N N",
    "ReturnForCompletion": "N N N N N N N N",
    "DelayNotice": "N N N N N N N N",
    "TraceResponse": "N N N N N N N N",
    "Refusal": "N N N N N N N N",
    "Comment": "= = = = = = = I",
    "Withdrawal": "withdrawn withdrawn withdrawn withdrawn withdrawn I I I",
    "TraceRequest": "I I resubmitted I I I I I",
}
FROM_OUTSIDER = dict.fromkeys(FROM_REQUESTED, "U U U U U U U U")
CODES = {"I": ErrorCode.INVALID_STATE, "N": ErrorCode.NOT_AUTHORIZED, "U": ErrorCode.UNKNOWN_TRACE}
ANSWERS = {"DelayNotice": "delayed", "TraceResponse": "responded", "Refusal": "refused"}

NOW = datetime(2026, 11, 2, 9, 15, tzinfo=UTC)


def trace_in(status: str, acknowledged: Acknowledged | None = None) -> Trace:
    """A trace from ZA to MZ in `status`."""
    return Trace(
        "t-1",
        "ZA",
        "MZ",
        "MZ",
        Rule.EXPORT_RECORD,
        "sha256:0",
        TraceStatus(status),
        Deadlines(NOW, NOW),
        NOW,
        NOW,
        Confidentiality(True),
        acknowledged=acknowledged,
    )


def cases() -> list[tuple[str, str, str, str]]:
    """(sender, kind, state, expected) for every cell of the three tables."""
    out = []
    for sender, table in (("MZ", FROM_REQUESTED), ("ZA", FROM_REQUESTING), ("KE", FROM_OUTSIDER)):
        for kind, row in table.items():
            cells = row.split()
            assert len(cells) == len(STATES), kind
            out += [(sender, kind, state, cell) for state, cell in zip(STATES, cells, strict=True)]
    return out


@pytest.mark.parametrize(("sender", "kind", "state", "expected"), cases())
def test_lifecycle_matrix(sender: str, kind: str, state: str, expected: str) -> None:
    """Each message is allowed only in its states and from its party; otherwise refused with the exact code."""
    trace = trace_in(state)
    if expected in CODES:
        with pytest.raises(Refused) as caught:
            apply(trace, kind, sender)
        assert caught.value.code is CODES[expected], caught.value.detail
        return
    transition = apply(trace, kind, sender)
    assert transition.status.value == (state if expected == "=" else expected)
    assert transition.recipient == ("ZA" if sender == "MZ" else "MZ")


def test_refusal_detail_cites_the_rule() -> None:
    """An out-of-turn message is told why, with the clause."""
    with pytest.raises(Refused, match=r"8\.3\.3"):
        apply(trace_in("returned"), "TraceResponse", "MZ")


@pytest.mark.parametrize("state", ["delivered", "resubmitted"])
@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_an_answer_before_the_acknowledgement_implies_it(kind: str, state: str) -> None:
    """A response, refusal or delay from the requested state before its acknowledgement is accepted as implying it."""
    transition = apply(trace_in(state), kind, "MZ")
    assert (transition.status.value, transition.recipient) == (ANSWERS[kind], "ZA")
    assert transition.implies_acknowledgement


@pytest.mark.parametrize("state", ["acknowledged", "delayed"])
@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_an_answer_after_the_acknowledgement_implies_nothing(kind: str, state: str) -> None:
    """An answer to a request already acknowledged is not marked as implying an acknowledgement."""
    assert not apply(trace_in(state), kind, "MZ").implies_acknowledgement


@pytest.mark.parametrize("kind", sorted(ANSWERS))
def test_an_early_answer_settles_the_acknowledgement_notices(kind: str) -> None:
    """An answer that implies the acknowledgement settles its reminder and overdue notice, whatever else it settles."""
    for policy in (DeadlinePolicy(), DeadlinePolicy(delay_silences_overdue=True)):
        assert settled_by(kind, policy, implies_acknowledgement=True) >= ACKNOWLEDGEMENT_NOTICES
    assert settled_by("DelayNotice", DeadlinePolicy(), implies_acknowledgement=True) == ACKNOWLEDGEMENT_NOTICES
    assert settled_by("DelayNotice", DeadlinePolicy(), implies_acknowledgement=False) == frozenset()
    assert settled_by("TraceResponse", DeadlinePolicy(), implies_acknowledgement=True) == ALL_NOTICES
    assert NoticeKind.RESPONSE_OVERDUE in settled_by("DelayNotice", DeadlinePolicy(delay_silences_overdue=True))


def test_an_acknowledgement_after_an_implied_one_is_refused_and_told_why() -> None:
    """An Acknowledgement once the answer implied it stays INVALID_STATE, and the detail says the answer implied it."""
    implied = Acknowledged(NOW, "b1d3f4a2-0c5e-4e8f-9a7b-6c5d4e3f2a1b", Acknowledgement.IMPLIED)
    with pytest.raises(Refused, match="already implied the acknowledgement") as caught:
        apply(trace_in("responded", implied), "Acknowledgement", "MZ")
    assert caught.value.code is ErrorCode.INVALID_STATE


@pytest.mark.parametrize("kind", sorted(FROM_OUTSIDER))
def test_a_non_party_is_answered_as_for_an_unknown_trace(kind: str) -> None:
    """A state no party of the trace gets exactly the code and words an unknown trace gets, whatever it sends."""
    with pytest.raises(Refused) as caught:
        apply(trace_in("delivered"), kind, "KE")
    expected = unknown_trace("t-1", "KE")
    assert (caught.value.code, caught.value.detail) == (expected.code, expected.detail)
    assert expected.detail == "no trace t-1 that KE is a party to is known to the switch"


def test_the_documented_lifecycle_matrix_is_the_one_enforced() -> None:
    """docs/contract-notes.md's matrix, cell by cell, against `RULES`: the operators' table cannot drift."""
    text = (Path(__file__).parents[2] / "docs" / "contract-notes.md").read_text(encoding="utf-8")
    rows = [line.strip("|").split("|") for line in text.splitlines() if line.startswith("| ")]
    header, *body = rows
    states = [TraceStatus(cell.strip()) for cell in header[1:]]
    documented = {}
    for row in body:
        name = row[0].strip().split(" ")[0].rstrip(",")
        documented[name] = {
            state: cell.strip() for state, cell in zip(states, row[1:], strict=True) if cell.strip() != "·"
        }
    expected = {
        kind: dict.fromkeys(allowed, f"→ {target.value}" if target else "✓")
        for kind, (_, allowed, target) in lifecycle.RULES.items()
    }
    assert documented == expected
    assert set(states) == set(TraceStatus)
