"""Deadline notices with an injected clock: each fires once, in order, across restarts and downtime."""

from __future__ import annotations

from datetime import timedelta

from gateway.dev import samples

from .conftest import Switch

REQUEST = {"exports": [("ZA", "MZ", "2019-06-14")]}


async def open_trace(switch: Switch) -> str:
    """ZA asks MZ at the switch's current time; queues emptied."""
    outcome = await switch.send("ZA", samples.trace_request("ZA", created_at=switch.clock.now, **REQUEST))  # type: ignore[arg-type]
    switch.take("ZA")
    switch.take("MZ")
    assert outcome.trace_id
    return outcome.trace_id


def notices(switch: Switch, state: str) -> list[str]:
    """Kinds of the DeadlineNotices queued for `state` (taking them)."""
    return [m.find("Kind") or "" for m in switch.take(state) if m.kind == "DeadlineNotice"]


async def test_reminder_then_overdue_each_once(switch: Switch) -> None:
    """Day 5: a reminder to MZ; day 7: overdue to both; asking again sends nothing more."""
    await open_trace(switch)
    assert await switch.tick() == 0
    switch.clock.advance(timedelta(days=5, minutes=1))
    await switch.tick()
    assert notices(switch, "MZ") == ["acknowledgement-reminder"] and notices(switch, "ZA") == []
    switch.clock.advance(timedelta(days=2))
    await switch.tick()
    assert notices(switch, "MZ") == ["acknowledgement-overdue"]
    assert notices(switch, "ZA") == ["acknowledgement-overdue"]
    assert await switch.tick() == 0
    assert notices(switch, "MZ") == [] and notices(switch, "ZA") == []


async def test_due_at_names_the_deadline(switch: Switch) -> None:
    """A notice's DueAt is the deadline itself, not the moment it was sent."""
    start = switch.clock.now
    await open_trace(switch)
    switch.clock.advance(timedelta(days=30))
    await switch.tick()
    due = {m.find("Kind"): m.find("DueAt") for m in switch.take("MZ")}
    assert (due["acknowledgement-overdue"] or "").startswith((start + timedelta(days=7)).date().isoformat())


async def test_downtime_spanning_deadlines_fires_each_once_in_order_after_restart(switch: Switch) -> None:
    """The gateway is down for 60 days: on restart every missed notice fires once, in the order they fell due."""
    await open_trace(switch)
    await switch.restart()
    switch.clock.advance(timedelta(days=60))
    await switch.restart()
    await switch.tick()
    assert notices(switch, "MZ") == [
        "acknowledgement-reminder",
        "acknowledgement-overdue",
        "response-reminder",
        "response-overdue",
    ]
    assert notices(switch, "ZA") == ["acknowledgement-overdue", "response-overdue"]
    await switch.restart()
    assert await switch.tick() == 0


async def test_restart_between_notices_neither_loses_nor_repeats(switch: Switch) -> None:
    """Reminder fired before a restart is not sent again after it; the overdue notice still comes."""
    await open_trace(switch)
    switch.clock.advance(timedelta(days=6))
    await switch.tick()
    assert notices(switch, "MZ") == ["acknowledgement-reminder"]
    await switch.restart()
    switch.clock.advance(timedelta(days=2))
    await switch.tick()
    assert notices(switch, "MZ") == ["acknowledgement-overdue"]


async def test_acknowledgement_settles_its_notices_but_not_the_response_clock(switch: Switch) -> None:
    """Acknowledged on day 2: no acknowledgement notices; the response reminder and overdue still come."""
    trace_id = await open_trace(switch)
    switch.clock.advance(timedelta(days=2))
    await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace_id, created_at=switch.clock.now))
    switch.take("MZ")
    switch.take("ZA")
    switch.clock.advance(timedelta(days=60))
    await switch.tick()
    assert notices(switch, "MZ") == ["response-reminder", "response-overdue"]


async def test_response_settles_every_notice(switch: Switch) -> None:
    """Once answered, no notice fires."""
    trace_id = await open_trace(switch)
    await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace_id))
    await switch.send("MZ", samples.trace_response("MZ", trace_id))
    switch.take("MZ")
    switch.take("ZA")
    switch.clock.advance(timedelta(days=90))
    assert await switch.tick() == 0


async def test_delay_keeps_the_overdue_notice_unless_configured(switch: Switch) -> None:
    """By default a DelayNotice does not silence response-overdue; an administrator can make it."""
    for silences, expected in ((False, ["response-reminder", "response-overdue"]), (True, ["response-reminder"])):
        await switch.restart(delay_silences_overdue=silences)
        trace_id = await open_trace(switch)
        await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace_id, created_at=switch.clock.now))
        delay = samples.reply(
            "DelayNotice",
            "MZ",
            trace_id,
            created_at=switch.clock.now,
            Reason="ongoing-investigation",
            Text="Later.",
            ExpectedBy="2027-06-01",
        )
        assert (await switch.send("MZ", delay)).outcome == "accepted"
        switch.take("MZ")
        switch.take("ZA")
        switch.clock.advance(timedelta(days=60))
        await switch.tick()
        assert notices(switch, "MZ") == expected


async def test_resubmission_restarts_the_clocks(switch: Switch) -> None:
    """Returned on day 6, resubmitted on day 10: the acknowledgement is due 7 days after the resubmission."""
    trace_id = await open_trace(switch)
    switch.clock.advance(timedelta(days=4))
    await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace_id, created_at=switch.clock.now))
    switch.clock.advance(timedelta(days=2))
    await switch.send(
        "MZ", samples.reply("ReturnForCompletion", "MZ", trace_id, created_at=switch.clock.now, MissingItem=["caliber"])
    )
    switch.clock.advance(timedelta(days=4))
    again = samples.trace_request("ZA", trace_id=trace_id, resubmits=trace_id, created_at=switch.clock.now, **REQUEST)  # type: ignore[arg-type]
    assert (await switch.send("ZA", again)).outcome == "accepted"
    switch.take("MZ")
    switch.take("ZA")
    switch.clock.advance(timedelta(days=6))
    assert await switch.tick() == 1
    assert notices(switch, "MZ") == ["acknowledgement-reminder"]
