"""The trace state machine (contract section 6, ISACS 05.31 8.3): which message is allowed when, from whom."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.core.errors import ErrorCode, Refused
from gateway.core.model import Acknowledgement, Trace, TraceStatus

S = TraceStatus


class Role(StrEnum):
    """A party's role in one trace."""

    REQUESTING = "requesting"
    REQUESTED = "requested"
    EITHER = "either"


# Message type → (who may send it, the states it is allowed in, the state it leads to; None keeps the state).
_OPEN = (S.DELIVERED, S.RESUBMITTED)
_ANSWERABLE = (*_OPEN, S.ACKNOWLEDGED, S.DELAYED)  # with the requested state: an answer is due
_LIVE = (S.DELIVERED, S.RESUBMITTED, S.ACKNOWLEDGED, S.RETURNED, S.DELAYED)
RULES: dict[str, tuple[Role, tuple[TraceStatus, ...], TraceStatus | None]] = {
    "Acknowledgement": (Role.REQUESTED, _OPEN, S.ACKNOWLEDGED),
    "ReturnForCompletion": (Role.REQUESTED, (*_OPEN, S.ACKNOWLEDGED), S.RETURNED),
    "DelayNotice": (Role.REQUESTED, _ANSWERABLE, S.DELAYED),
    "TraceResponse": (Role.REQUESTED, _ANSWERABLE, S.RESPONDED),
    "Refusal": (Role.REQUESTED, _ANSWERABLE, S.REFUSED),
    "Comment": (Role.EITHER, (*_LIVE, S.RESPONDED, S.REFUSED), None),
    "Withdrawal": (Role.REQUESTING, _LIVE, S.WITHDRAWN),
    "TraceRequest": (Role.REQUESTING, (S.RETURNED,), S.RESUBMITTED),  # a resubmission
}
# An answer before the acknowledgement shows receipt itself: it implies the acknowledgement (contract notes, 13).
ANSWERS = frozenset({"DelayNotice", "TraceResponse", "Refusal"})

_HINTS = {
    "Acknowledgement": "an acknowledgement answers a request just delivered or resubmitted (8.3.1)",
    "ReturnForCompletion": "a request can be returned for completion only before it is answered (8.3.2)",
    "DelayNotice": "a delay is announced while the request is with the requested state, before the answer (8.3.4.2)",
    "TraceResponse": "a response answers a request that is with the requested state (8.3.3) and ends the trace",
    "Refusal": "a refusal answers a request that is with the requested state (8.3.4.2) and ends the trace",
    "Comment": "a withdrawn trace takes no further messages",
    "Withdrawal": "only a trace not yet answered can be withdrawn",
    "TraceRequest": "only a request returned for completion can be resubmitted (8.3.2)",
}


@dataclass(frozen=True)
class Transition:
    """What an allowed message does: the trace's new status, who hears of it, and whether it implies the
    acknowledgement (an answer to a request not yet acknowledged)."""

    status: TraceStatus
    recipient: str
    role: Role
    implies_acknowledgement: bool = False


def role_of(trace: Trace, state: str) -> Role | None:
    """`state`'s role in `trace`, or None when it is no party of it."""
    if state == trace.requester:
        return Role.REQUESTING
    if state == trace.party:
        return Role.REQUESTED
    return None


def unknown_trace(trace_id: str, sender: str) -> Refused:
    """The refusal for a trace that does not exist and for one `sender` is no party to, alike (same code, same
    words): a state must not learn from the answer that a trace it has no part in exists."""
    return Refused(ErrorCode.UNKNOWN_TRACE, f"no trace {trace_id} that {sender} is a party to is known to the switch")


def require_kind(kind: str) -> None:
    """NOT_AUTHORIZED for a message type that does not belong to a trace (checked before the trace is read)."""
    if kind not in RULES:
        raise Refused(ErrorCode.NOT_AUTHORIZED, f"{article(kind)} does not belong to a trace")


def apply(trace: Trace, kind: str, sender: str) -> Transition:
    """The transition `kind` from `sender` makes, or `Refused` with the code that says why not."""
    require_kind(kind)
    allowed_role, allowed_states, target = RULES[kind]
    role = role_of(trace, sender)
    if role is None:
        raise unknown_trace(trace.trace_id, sender)
    if allowed_role is not Role.EITHER and role is not allowed_role:
        raise Refused(
            ErrorCode.NOT_AUTHORIZED,
            f"only the {allowed_role.value} state ({_holder(trace, allowed_role)}) "
            f"may send {article(kind)} in this trace",
        )
    if trace.status not in allowed_states:
        hint = _HINTS[kind]
        if kind == "Acknowledgement" and trace.acknowledged is not None:
            implied = trace.acknowledged.how is Acknowledgement.IMPLIED
            hint += "; its answer already implied the acknowledgement" if implied else "; it was acknowledged already"
        raise Refused(
            ErrorCode.INVALID_STATE,
            f"{article(kind)} is not allowed while the trace is {trace.status.value}: {hint}",
        )
    return Transition(
        status=target or trace.status,
        recipient=trace.counterpart(sender),
        role=role,
        implies_acknowledgement=kind in ANSWERS and trace.status in _OPEN,
    )


def _holder(trace: Trace, role: Role) -> str:
    """The state that holds `role` in `trace`."""
    return trace.requester if role is Role.REQUESTING else trace.party


def article(kind: str) -> str:
    """The message type with its article: "an Acknowledgement", "a Refusal"."""
    return f"an {kind}" if kind[0] in "AEIOU" else f"a {kind}"
