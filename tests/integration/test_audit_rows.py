"""The audit verifier holds rows and records both ways: every row a record vouches for must exist and match in every
column the record holds (deadlines included), and every row must have a record."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from gateway.store import deadlines, inbound, outbox, traces

from .conftest import Switch
from .test_audit import execute, first_record_named, records, story, verified


async def owner_of(switch: Switch, kind: str, key: str, value: object) -> int:
    """The record of `kind` whose data says `key` is `value`."""
    return int(next(r.seq for r in await records(switch) if r.type == kind and json.loads(r.data).get(key) == value))


async def test_deleting_an_accepted_message_row_is_caught(switch: Switch) -> None:
    """An accepted message's inbound row deleted: the record that vouches for it is named."""
    await story(switch)
    row = (await switch.store.fetch(select(inbound).where(inbound.c.outcome == "accepted").order_by(inbound.c.id)))[0]
    await execute(switch, delete(inbound).where(inbound.c.id == row.id))
    report = await verified(switch)
    assert first_record_named(report) == await owner_of(switch, "message-in", "inbound_id", row.id)
    assert f"inbound row {row.id}, which is missing (deleted)" in report.problems[0]


async def test_deleting_a_refused_message_or_an_outbox_row_is_caught(switch: Switch) -> None:
    """A refusal's inbound row and a queued message's outbox row deleted: both records are named."""
    await story(switch)
    refused = (await switch.store.fetch(select(inbound).where(inbound.c.outcome == "refused")))[0]
    sent = (await switch.store.fetch(select(outbox).order_by(outbox.c.id)))[-1]
    await execute(
        switch, delete(inbound).where(inbound.c.id == refused.id), delete(outbox).where(outbox.c.id == sent.id)
    )
    problems = " | ".join((await verified(switch)).problems)
    assert f"inbound row {refused.id}, which is missing" in problems
    assert f"outbox row {sent.id}, which is missing" in problems


async def test_deleting_a_trace_row_is_caught(switch: Switch) -> None:
    """A trace's row deleted: its last record is named."""
    await story(switch)
    trace = (await switch.store.fetch(select(traces)))[0]
    await execute(switch, delete(traces).where(traces.c.trace_id == trace.trace_id))
    report = await verified(switch)
    assert not report.ok
    assert any(f"trace {trace.trace_id} has records, but its row is missing" in p for p in report.problems)


async def test_every_trace_column_is_held_to_its_record(switch: Switch) -> None:
    """A trace's deadline, opening time, confidentiality or current request changed in its row: named."""
    await story(switch)
    trace = (await switch.store.fetch(select(traces).where(traces.c.status == "responded")))[0]
    changes: list[dict[str, Any]] = [
        {"respond_by": trace.respond_by + timedelta(days=3650)},
        {"opened_at": trace.opened_at - timedelta(days=1)},
        {"confidentiality_guaranteed": not trace.confidentiality_guaranteed},
        {"current_request_id": "someone-else"},
        {"restrictions": None},
    ]
    for change in changes:
        await execute(switch, update(traces).where(traces.c.trace_id == trace.trace_id).values(**change))
        report = await verified(switch)
        [name] = change
        assert not report.ok and f"the stored {name} of trace {trace.trace_id}" in report.problems[0], report.problems
        await execute(
            switch, update(traces).where(traces.c.trace_id == trace.trace_id).values(**{name: trace._mapping[name]})
        )
    assert (await verified(switch)).ok


async def pending(switch: Switch) -> Any:
    """A pending deadline row."""
    return (
        await switch.store.fetch(select(deadlines).where(deadlines.c.status == "pending").order_by(deadlines.c.id))
    )[0]


async def test_moving_a_pending_deadline_years_ahead_is_caught(switch: Switch) -> None:
    """A pending deadline's due time (and firing time) moved five years ahead: the record that planned it is named."""
    await story(switch)
    row = await pending(switch)
    years = timedelta(days=5 * 365)
    await execute(
        switch,
        update(deadlines)
        .where(deadlines.c.id == row.id)
        .values(due_at=row.due_at + years, fire_at=row.fire_at + years),
    )
    report = await verified(switch)
    assert not report.ok
    assert f"deadline row {row.id} ({row.kind}" in report.problems[0] and "its times were changed" in report.problems[0]


async def test_moving_only_a_deadlines_due_time_is_caught(switch: Switch) -> None:
    """Only the due time of a pending deadline moved: caught as well."""
    await story(switch)
    row = await pending(switch)
    await execute(
        switch, update(deadlines).where(deadlines.c.id == row.id).values(due_at=row.due_at + timedelta(days=900))
    )
    report = await verified(switch)
    assert not report.ok and "its times were changed" in report.problems[0]


async def test_deleting_a_deadline_is_caught(switch: Switch) -> None:
    """A pending deadline row deleted, then a fired one: each is named as planned by a record but missing."""
    await story(switch)
    row = await pending(switch)
    await execute(switch, delete(deadlines).where(deadlines.c.id == row.id))
    report = await verified(switch)
    assert not report.ok and f"planned a {row.kind} notice" in report.problems[0]
    assert "no deadline row holds it (deleted)" in report.problems[0]
    fired = (await switch.store.fetch(select(deadlines).where(deadlines.c.status == "fired")))[0]
    await execute(switch, delete(deadlines).where(deadlines.c.id == fired.id))
    problems = (await verified(switch)).problems
    assert any(f"fired it as row {fired.id})" in p and "(deleted)" in p for p in problems), problems


async def test_silencing_or_reviving_a_deadline_is_caught(switch: Switch) -> None:
    """A pending notice marked fired (so it never goes out), or a cancelled one made pending again: named."""
    await story(switch)
    row = await pending(switch)
    await execute(switch, update(deadlines).where(deadlines.c.id == row.id).values(status="fired"))
    report = await verified(switch)
    assert (
        not report.ok
        and f"deadline row {row.id}" in report.problems[0]
        and "records make it pending" in report.problems[0]
    )
    await execute(switch, update(deadlines).where(deadlines.c.id == row.id).values(status="pending"))
    cancelled = (await switch.store.fetch(select(deadlines).where(deadlines.c.status == "cancelled")))[0]
    await execute(
        switch, update(deadlines).where(deadlines.c.id == cancelled.id).values(status="pending", settled_at=None)
    )
    report = await verified(switch)
    assert not report.ok and "records make it cancelled" in report.problems[0]


async def test_rows_no_record_vouches_for_are_caught(switch: Switch) -> None:
    """A message, an outbox row, a trace and a deadline inserted behind the gateway's back: each is named."""
    await story(switch)
    model = (await switch.store.fetch(select(inbound).order_by(inbound.c.id)))[0]._mapping
    message = (await switch.store.fetch(select(outbox).order_by(outbox.c.id)))[0]._mapping
    trace = (await switch.store.fetch(select(traces)))[0]._mapping
    deadline = (await switch.store.fetch(select(deadlines)))[0]._mapping
    await execute(
        switch,
        insert(inbound).values(**{**model, "id": 9001, "dedup_key": "forged"}),
        insert(outbox).values(**{**message, "id": 9002}),
        insert(traces).values(**{**trace, "trace_id": "forged-trace"}),
        insert(deadlines).values(**{**deadline, "id": 9003, "status": "pending"}),
    )
    problems = " | ".join((await verified(switch)).problems)
    assert "inbound row 9001 has no audit record" in problems
    assert "outbox row 9002 has no audit record" in problems
    assert "trace forged-trace has no audit record" in problems
    assert "deadline row 9003" in problems and "was planned by no record" in problems


async def test_redirecting_a_queued_message_is_caught(switch: Switch) -> None:
    """An outbox row's queue changed (to send a signed message to another state): its record is named."""
    await story(switch)
    row = (await switch.store.fetch(select(outbox).order_by(outbox.c.id)))[-1]
    await execute(switch, update(outbox).where(outbox.c.id == row.id).values(queue="national.KE.in"))
    report = await verified(switch)
    assert first_record_named(report) == await owner_of(switch, "message-out", "outbox_id", row.id)
    assert f"the stored queue of message-out row {row.id}" in report.problems[0]
