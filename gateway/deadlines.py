"""Deadlines of a trace (ISACS 05.31, 8.3.1 and 8.3.4.1): planned from the delivery time; the clock is a parameter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.model import Deadlines


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
