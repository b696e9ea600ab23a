"""The trace state machine as a table: every (state, message type, sender role) and its outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.errors import ErrorCode, Refused
from gateway.lifecycle import apply
from gateway.model import Confidentiality, Deadlines, Rule, Trace, TraceStatus

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
# Cell: the new state, or the refusal code (I = INVALID_STATE, N = NOT_AUTHORIZED), "=" keeps the state.
FROM_REQUESTED = {
    "Acknowledgement": "acknowledged I I acknowledged I I I I",
    "ReturnForCompletion": "returned returned I returned I I I I",
    "DelayNotice": "I delayed I I delayed I I I",
    "TraceResponse": "I responded I I responded I I I",
    "Refusal": "I refused I I refused I I I",
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
FROM_OUTSIDER = dict.fromkeys(FROM_REQUESTED, "N N N N N N N N")

NOW = datetime(2026, 11, 2, 9, 15, tzinfo=UTC)


def trace_in(status: str) -> Trace:
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
    if expected in {"I", "N"}:
        with pytest.raises(Refused) as caught:
            apply(trace, kind, sender)
        code = ErrorCode.INVALID_STATE if expected == "I" else ErrorCode.NOT_AUTHORIZED
        assert caught.value.code is code, caught.value.detail
        return
    transition = apply(trace, kind, sender)
    assert transition.status.value == (state if expected == "=" else expected)
    assert transition.recipient == ("ZA" if sender == "MZ" else "MZ")


def test_refusal_detail_cites_the_rule() -> None:
    """An out-of-turn message is told why, with the clause."""
    with pytest.raises(Refused, match=r"8\.3\.1"):
        apply(trace_in("delivered"), "TraceResponse", "MZ")
