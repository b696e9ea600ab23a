"""A `StatusQuery` answered from a snapshot: the asking state's own traces as its batch leaves them (pure).

The store read the page before the batch was decided; the traces the batch's earlier messages changed replace
or join what it read, and only then is the page cut, so the answer is what one query per message would give.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from lxml import etree

from gateway.core import lifecycle
from gateway.core.deadlines import is_overdue
from gateway.core.model import Trace
from gateway.core.snapshot import Page, PageQuery
from gateway.xml import compose


def _belongs(trace: Trace, state: str) -> bool:
    """Whether `state` takes part in the trace (asked, or was asked)."""
    return state in (trace.requester, trace.party)


def _after(trace: Trace, after: Trace | None) -> bool:
    """Whether `trace` comes after `after` in the order of pages: opening time, then TraceId."""
    return after is None or (trace.opened_at, trace.trace_id) > (after.opened_at, after.trace_id)


def matches(trace: Trace, query: PageQuery) -> bool:
    """Whether one of the state's traces passes a StatusQuery's filters (as the store applies them)."""
    state, role = query.state, query.role
    if (role == "outgoing" and trace.requester != state) or (role == "incoming" and trace.party != state):
        return False
    if query.status and trace.status.value != query.status:
        return False
    return query.since is None or trace.updated_at >= query.since


def status_report(query: PageQuery, page: Page, changed: Mapping[str, Trace], now: datetime) -> etree._Element:
    """The `StatusReport` for `query`, from its `page` and the traces `changed` earlier in the batch.

    A query naming a trace reads that trace among the asker's own and applies the filters to it after: whether
    the trace is unknown or another's, both are refused alike; the asker's own trace filtered out is an empty
    report, not a refusal."""
    state = query.state
    after = page.after
    if query.after_id:
        mine = changed.get(query.after_id)
        after = mine if mine is not None and _belongs(mine, state) else page.after
        if after is None:
            raise lifecycle.unknown_trace(query.after_id, state)
    rows = {t.trace_id: t for t in page.traces}
    rows.update(changed)
    own = sorted(
        (t for t in rows.values() if _belongs(t, state) and _after(t, after)),
        key=lambda t: (t.opened_at, t.trace_id),
    )
    if query.trace_id:
        found = [t for t in own if t.trace_id == query.trace_id]
        if not found and after is None:
            raise lifecycle.unknown_trace(query.trace_id, state)
        found = [t for t in found if matches(t, query)]
    else:
        found = [t for t in own if matches(t, query)][: query.limit + 1]
    more = len(found) > query.limit
    found = found[: query.limit]
    lines = [
        compose.StatusLine(
            trace_id=t.trace_id,
            role="outgoing" if t.requester == state else "incoming",
            counterpart=t.counterpart(state),
            status=t.status.value,
            deadlines=t.deadlines,
            overdue=is_overdue(t.status.value, t.deadlines, now),
            acknowledged=t.acknowledged,
        )
        for t in found
    ]
    return compose.status_report(now=now, lines=lines, next_after=found[-1].trace_id if more else None)
