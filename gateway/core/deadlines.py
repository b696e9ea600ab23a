"""Deadlines of a trace (ISACS 05.31, 8.3.1 and 8.3.4.1): planned from the delivery time; the clock is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gateway.core.model import Deadlines


@dataclass(frozen=True)
class DeadlinePolicy:
    """How long the requested state has; reminders go out `*_reminder` before each deadline."""

    acknowledge_within: timedelta = timedelta(days=7)
    respond_within: timedelta = timedelta(weeks=8)
    acknowledge_reminder: timedelta = timedelta(days=2)
    respond_reminder: timedelta = timedelta(days=7)
    delay_silences_overdue: bool = False


def plan(delivered_at: datetime, policy: DeadlinePolicy) -> Deadlines:
    """Deadlines for a request delivered (or resubmitted) at `delivered_at`."""
    return Deadlines(
        acknowledge_by=delivered_at + policy.acknowledge_within,
        respond_by=delivered_at + policy.respond_within,
    )


class NoticeKind(StrEnum):
    """`DeadlineNotice/Kind` (contract section 4.2)."""

    ACKNOWLEDGEMENT_REMINDER = "acknowledgement-reminder"
    ACKNOWLEDGEMENT_OVERDUE = "acknowledgement-overdue"
    RESPONSE_REMINDER = "response-reminder"
    RESPONSE_OVERDUE = "response-overdue"

    @property
    def overdue(self) -> bool:
        """Overdue notices go to both parties; reminders only to the requested state."""
        return self.value.endswith("overdue")


ACKNOWLEDGEMENT_NOTICES = frozenset({NoticeKind.ACKNOWLEDGEMENT_REMINDER, NoticeKind.ACKNOWLEDGEMENT_OVERDUE})
RESPONSE_NOTICES = frozenset({NoticeKind.RESPONSE_REMINDER, NoticeKind.RESPONSE_OVERDUE})
ALL_NOTICES = ACKNOWLEDGEMENT_NOTICES | RESPONSE_NOTICES


@dataclass(frozen=True)
class PlannedNotice:
    """A notice to send at `fire_at` about a deadline at `due_at`."""

    kind: NoticeKind
    fire_at: datetime
    due_at: datetime


def notices_for(deadlines: Deadlines, policy: DeadlinePolicy) -> tuple[PlannedNotice, ...]:
    """The four notices a delivered (or resubmitted) request schedules, in the order they fire."""
    ack, respond = deadlines.acknowledge_by, deadlines.respond_by
    planned = (
        PlannedNotice(NoticeKind.ACKNOWLEDGEMENT_REMINDER, ack - policy.acknowledge_reminder, ack),
        PlannedNotice(NoticeKind.ACKNOWLEDGEMENT_OVERDUE, ack, ack),
        PlannedNotice(NoticeKind.RESPONSE_REMINDER, respond - policy.respond_reminder, respond),
        PlannedNotice(NoticeKind.RESPONSE_OVERDUE, respond, respond),
    )
    return tuple(sorted(planned, key=lambda p: (p.fire_at, p.kind.overdue)))


def settled_by(kind: str, policy: DeadlinePolicy, *, implies_acknowledgement: bool = False) -> frozenset[NoticeKind]:
    """The pending notices an accepted message of `kind` makes moot; an answer that implies the acknowledgement
    (one sent before any `Acknowledgement`) settles the acknowledgement's two as well."""
    acknowledged = ACKNOWLEDGEMENT_NOTICES if implies_acknowledgement else frozenset()
    if kind == "Acknowledgement":
        return ACKNOWLEDGEMENT_NOTICES
    if kind in {"TraceResponse", "Refusal", "Withdrawal", "ReturnForCompletion", "TraceRequest"}:
        return ALL_NOTICES  # answered, withdrawn, or back with the requester (a resubmission plans afresh)
    if kind == "DelayNotice" and policy.delay_silences_overdue:
        return acknowledged | {NoticeKind.RESPONSE_OVERDUE}
    return acknowledged


def is_overdue(status: str, deadlines: Deadlines, now: datetime) -> bool:
    """Whether the requested state is late: unacknowledged past the first deadline, or unanswered past the second."""
    if status in {"delivered", "resubmitted"} and now > deadlines.acknowledge_by:
        return True
    return status in {"delivered", "resubmitted", "acknowledged", "delayed"} and now > deadlines.respond_by
