"""Checkpoints at the gateway's cadence: a rewritten tail whose later checkpoints were deleted is caught, a stop and
start is not taken for one, a crash's late checkpoint is named (and can be accepted), and a head kept outside the
database catches even a cut within the cadence."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update

from gateway.core import chain as rules
from gateway.dev import samples
from gateway.store import audit, audit_head, inbound, outbox

from .conftest import Switch
from .test_audit import REQUEST, checkpoint, execute, records, story, verified
from .test_audit_bundle import tracegate


async def test_a_clean_history_with_a_stop_and_start_verifies(switch: Switch) -> None:
    """Checkpoints as the gateway writes them, a stop (closing checkpoint), days down, a start, a return and a
    resubmission, deadlines fired and settled: no finding at all, weeks later."""
    await story(switch)
    assert await checkpoint(switch)  # the closing checkpoint of `stop`
    await switch.restart()
    switch.clock.advance(timedelta(days=3))
    opened = await switch.send("ZA", samples.trace_request("ZA", created_at=switch.clock.now, **REQUEST))  # type: ignore[arg-type]
    trace = opened.trace_id or ""
    await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace, created_at=switch.clock.now))
    await switch.send(
        "MZ", samples.reply("ReturnForCompletion", "MZ", trace, created_at=switch.clock.now, MissingItem=["caliber"])
    )
    again = samples.trace_request("ZA", trace_id=trace, resubmits=trace, created_at=switch.clock.now, **REQUEST)  # type: ignore[arg-type]
    assert (await switch.send("ZA", again)).outcome == "accepted"
    assert await checkpoint(switch)
    switch.clock.advance(timedelta(days=6))
    assert await switch.tick() >= 1
    assert await checkpoint(switch)
    switch.clock.advance(timedelta(days=40))
    report = await verified(switch)
    assert report.ok and not report.notes, (report.problems, report.notes)


async def test_rewriting_the_tail_and_deleting_later_checkpoints_is_caught(switch: Switch) -> None:
    """Records after a kept checkpoint rewritten with fresh hashes, the checkpoints after it deleted, the head and the
    rows made to agree: the tail is unvouched for longer than the cadence allows."""
    await story(switch)
    switch.clock.advance(timedelta(minutes=5))
    assert await checkpoint(switch)
    await switch.send("KE", samples.trace_request("KE", omit=("Caliber",), created_at=switch.clock.now))
    switch.clock.advance(timedelta(minutes=5))
    assert await checkpoint(switch)
    switch.clock.advance(timedelta(minutes=10))
    assert (await verified(switch)).ok
    chain = await records(switch)
    kept = [r for r in chain if r.type == "checkpoint"][1]  # the attacker keeps the second checkpoint
    rebuilt: list[rules.Record] = []
    seq, prev = kept.seq, kept.hash
    for r in chain[kept.seq :]:
        if r.type == "checkpoint":
            continue  # they cannot sign: later checkpoints are deleted
        data = rules.canonical(
            {**rules.Record(*r).fields(), "code": "NO_ROUTE"} if '"INCOMPLETE"' in r.data else rules.Record(*r).fields()
        )
        seq += 1
        digest = rules.record_hash(seq, r.at, r.type, r.trace_id, r.body_sha256, data, prev)
        rebuilt.append(rules.Record(seq, r.at, r.type, r.trace_id, r.body_sha256, data, prev, digest))
        prev = digest
    await execute(
        switch,
        delete(audit).where(audit.c.seq > kept.seq),
        *(insert(audit).values(**r.__dict__) for r in rebuilt),
        update(audit_head).values(seq=seq, hash=prev),
        update(inbound)
        .where(inbound.c.id == max(r.id for r in await switch.store.fetch(select(inbound))))
        .values(code="NO_ROUTE"),
    )
    report = await verified(switch)
    assert not report.ok and report.problems[0].startswith(f"record {kept.seq + 1}: unvouched tail"), report.problems
    assert len(report.problems) == 1, report.problems  # everything else was made to agree


async def crash_and_restart(switch: Switch) -> int:
    """Traffic, a crash (no closing checkpoint), two hours down, a start, traffic, the next checkpoint; its number."""
    await story(switch)
    await switch.restart()  # no checkpoint: the process was killed
    switch.clock.advance(timedelta(hours=2))
    await switch.send("ZA", samples.message("StatusQuery", "ZA", created_at=switch.clock.now))
    await checkpoint(switch)
    return int(max(r.seq for r in await records(switch) if r.type == "checkpoint"))


async def test_a_crash_leaves_a_late_checkpoint_that_is_named_and_can_be_accepted(switch: Switch) -> None:
    """Records left unsigned by a crash for longer than the cadence are named at the checkpoint that signed them;
    once investigated, `accepted_gaps` turns the finding into a note."""
    late = await crash_and_restart(switch)
    report = await verified(switch)
    assert not report.ok and report.problems[0].startswith(f"record {late}: records ")
    assert "waited 2.0 h" in report.problems[0] and "crash" in report.problems[0]
    accepted = await verified(switch, accepted_gaps={late})
    assert accepted.ok and len(accepted.notes) == 1 and "accepted gap" in accepted.notes[0]


async def test_a_cut_within_the_cadence_is_caught_only_against_a_head_kept_outside(switch: Switch) -> None:
    """The last message's records and rows removed and the head moved back, within the cadence: `verify` alone cannot
    tell (as documented), but it names the cut against the head an earlier verify printed."""
    await story(switch)
    assert await checkpoint(switch)
    await switch.send("ZA", samples.message("StatusQuery", "ZA", created_at=switch.clock.now))
    before = await verified(switch)
    assert before.ok and before.head is not None
    seq, digest = before.head
    chain = await records(switch)
    cut = [r for r in chain if r.seq > before.last_checkpoint]
    ids: dict[str, Any] = {r.type: rules.Record(*r).fields() for r in cut}
    await execute(
        switch,
        delete(audit).where(audit.c.seq > before.last_checkpoint),
        delete(inbound).where(inbound.c.id == ids["message-in"]["inbound_id"]),
        delete(outbox).where(outbox.c.id == ids["message-out"]["outbox_id"]),
        update(audit_head).values(
            seq=chain[before.last_checkpoint - 1].seq, hash=chain[before.last_checkpoint - 1].hash
        ),
    )
    assert (await verified(switch)).ok  # the blind spot docs/audit.md states
    report = await verified(switch, expect={seq: digest})
    assert not report.ok and report.problems[0].startswith(f"record {seq}: you supplied its hash")


async def test_the_head_row_must_name_the_last_record(switch: Switch) -> None:
    """A head row deleted, or holding another hash: named."""
    await story(switch)
    last = (await records(switch))[-1]
    await execute(switch, update(audit_head).values(hash="0" * 64))
    assert (await verified(switch)).problems[0].startswith(f"record {last.seq}: its hash is not the one the head holds")
    await execute(switch, delete(audit_head))
    assert "head row is missing" in " ".join((await verified(switch)).problems)


async def test_verify_prints_the_head_to_keep_and_checks_it(switch: Switch) -> None:
    """`audit verify` prints `--expect-head SEQ:HASH`; given back, it passes, and a wrong hash fails."""
    await story(switch)
    first = tracegate(switch, "verify")
    assert first.returncode == 0, first.stdout + first.stderr
    found = re.search(r"--expect-head (\d+):([0-9a-f]{64})", first.stdout)
    assert found, first.stdout
    again = tracegate(switch, "verify", "--expect-head", found.group(0).split()[1])
    assert again.returncode == 0, again.stdout
    wrong = tracegate(switch, "verify", "--expect-head", f"{found.group(1)}:{'ab' * 32}")
    assert wrong.returncode == 1 and "you supplied from outside the database" in wrong.stdout
