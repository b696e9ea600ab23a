"""The audit trail: tamper-evident, verifiable; every kind of change to the database is found and named."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from sqlalchemy import delete, insert, select, update

from gateway.audit.verify import Report, verify_store, write_checkpoint
from gateway.core import chain as rules
from gateway.dev import samples
from gateway.store import audit, audit_head, inbound, traces
from gateway.xml.trust import TrustStore

from .conftest import Switch

REQUEST = {"exports": [("ZA", "MZ", "2019-06-14")]}


async def checkpoint(switch: Switch) -> int | None:
    """Sign the head now, as the running gateway does every `checkpoint_interval_seconds` and when it stops."""
    return await write_checkpoint(switch.store, switch.pipeline.signer, switch.clock.now)


async def story(switch: Switch) -> None:
    """A small but complete history, checkpointed as a running gateway would: traces, refusals, a deadline fired, a
    checkpoint, then more traffic not yet signed."""
    opened = await switch.send("ZA", samples.trace_request("ZA", **REQUEST))  # type: ignore[arg-type]
    trace = opened.trace_id or ""
    await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace))
    await switch.send("KE", samples.trace_request("KE", omit=("Caliber",)))
    await switch.send("KE", b"<broken")
    await switch.send("MZ", samples.trace_response("MZ", trace, restrictions=["tracing-purposes-only"]))
    late = await switch.send("BR", samples.trace_request("BR", made_in="AT", created_at=switch.clock.now))
    assert await checkpoint(switch)  # within the interval, then six quiet days
    switch.clock.advance(timedelta(days=6))
    await switch.tick()
    assert await checkpoint(switch)
    await switch.send("AT", samples.reply("Acknowledgement", "AT", late.trace_id or "", created_at=switch.clock.now))
    await switch.send("ZA", samples.message("StatusQuery", "ZA", created_at=switch.clock.now))


async def verified(switch: Switch, **options: Any) -> Report:
    """Run the auditor's check over the switch's store, at the switch's time, with its checkpoint interval."""
    trust = TrustStore.load(switch.settings.trust_dir)
    gateway = x509.load_pem_x509_certificate(switch.settings.gateway_cert.read_bytes())
    options = {"checkpoint_interval": switch.settings.checkpoint_interval_seconds, "now": switch.clock.now, **options}
    return await verify_store(switch.store, trust, [gateway], **options)


async def records(switch: Switch) -> list[Any]:
    """The chain's rows in order."""
    return list(await switch.store.fetch(select(audit).order_by(audit.c.seq)))


async def execute(switch: Switch, *statements: Any) -> None:
    """Change the database behind the gateway's back."""
    async with switch.store.engine.begin() as conn:
        for statement in statements:
            await conn.execute(statement)


def first_record_named(report: Report) -> int:
    """The record number the first problem names."""
    assert not report.ok
    first = report.problems[0]
    assert first.startswith("record "), first
    return int(first.split()[1].rstrip(":"))


async def test_untouched_history_verifies(switch: Switch) -> None:
    """Every record links, the checkpoint verifies, every row and original signature checks out."""
    await story(switch)
    report = await verified(switch)
    assert report.ok, report.problems
    assert (report.records, report.checkpoints, report.signatures_checked) == (31, 2, 6)
    kinds = {r.type for r in await records(switch)}
    assert kinds == {"message-in", "message-out", "trace", "deadline", "routing-table", "checkpoint"}


async def test_editing_a_byte_of_a_stored_message_is_named(switch: Switch) -> None:
    """One byte changed in a received message: the record of that message is named."""
    await story(switch)
    row = (await switch.store.fetch(select(inbound).where(inbound.c.outcome == "accepted").order_by(inbound.c.id)))[0]
    body = row.body.replace(b"BXK291", b"BXK297", 1)
    await execute(switch, update(inbound).where(inbound.c.id == row.id).values(body=body))
    report = await verified(switch)
    owner = next(r for r in await records(switch) if r.type == "message-in" and f'"inbound_id":{row.id},' in r.data)
    assert first_record_named(report) == owner.seq
    assert "bytes" in report.problems[0]


async def test_editing_a_decision_is_named(switch: Switch) -> None:
    """A refusal turned into an acceptance in the table: named; the same edit in the record breaks its hash."""
    await story(switch)
    row = (await switch.store.fetch(select(inbound).where(inbound.c.code == "INCOMPLETE")))[0]
    await execute(switch, update(inbound).where(inbound.c.id == row.id).values(outcome="accepted", code=None))
    owner = next(r for r in await records(switch) if r.type == "message-in" and f'"inbound_id":{row.id},' in r.data)
    assert first_record_named(await verified(switch)) == owner.seq
    forged = owner.data.replace('"outcome":"refused"', '"outcome":"accepted"').replace(
        '"code":"INCOMPLETE"', '"code":null'
    )
    await execute(switch, update(audit).where(audit.c.seq == owner.seq).values(data=forged))
    report = await verified(switch)
    assert first_record_named(report) == owner.seq and "edited" in report.problems[0]


async def test_editing_a_trace_state_is_named(switch: Switch) -> None:
    """A trace set back to 'delivered' contradicts its last recorded state."""
    await story(switch)
    await execute(switch, update(traces).where(traces.c.status == "responded").values(status="delivered"))
    report = await verified(switch)
    assert not report.ok and "stored status" in report.problems[0]


async def test_deleting_a_record_is_named(switch: Switch) -> None:
    """The record after the gap is named."""
    await story(switch)
    await execute(switch, delete(audit).where(audit.c.seq == 10))
    report = await verified(switch)
    assert first_record_named(report) == 11 and "missing" in report.problems[0]


async def test_inserting_a_record_is_named(switch: Switch) -> None:
    """A forged record slipped in at 10 (well hashed) breaks the link of the record after it, and names a trace
    that has no row."""
    await story(switch)
    chain = await records(switch)
    after = [r for r in chain if r.seq >= 10]
    prev = chain[8]
    forged = rules.chain(
        [rules.Entry("trace", switch.clock.now, {"status": "responded"}, "forged")], prev.seq, prev.hash
    )[0]
    await execute(
        switch,
        delete(audit).where(audit.c.seq >= 10),
        insert(audit).values(**forged.__dict__),
        *(insert(audit).values(**{**r._mapping, "seq": r.seq + 1}) for r in after),
    )
    report = await verified(switch)
    assert first_record_named(report) == 10 and "trace forged" in report.problems[0]
    assert any(p.startswith("record 11:") and "does not link" in p for p in report.problems)


async def test_reordering_two_records_is_named(switch: Switch) -> None:
    """Records 12 and 13 swapped: 12 is named."""
    await story(switch)
    chain = {r.seq: r for r in await records(switch)}
    a, b = chain[12]._mapping, chain[13]._mapping
    await execute(
        switch,
        delete(audit).where(audit.c.seq.in_([12, 13])),
        insert(audit).values(**{**b, "seq": 12}),
        insert(audit).values(**{**a, "seq": 13}),
    )
    assert first_record_named(await verified(switch)) == 12


async def test_truncating_the_tail_is_found(switch: Switch) -> None:
    """Cutting the last records is found from the head; also when the head is moved back to hide it."""
    await story(switch)
    chain = await records(switch)
    keep = chain[-6]
    await execute(switch, delete(audit).where(audit.c.seq > keep.seq))
    report = await verified(switch)
    assert not report.ok and "removed from the tail" in " ".join(report.problems)
    await execute(switch, update(audit_head).values(seq=keep.seq, hash=keep.hash))
    report = await verified(switch)
    assert not report.ok and "has no audit record" in " ".join(report.problems)


async def test_rewriting_the_whole_chain_is_caught_by_the_checkpoint(switch: Switch) -> None:
    """An edit with every later hash recomputed (checkpoints too) still fails: the gateway's signature breaks."""
    await story(switch)
    row = (await switch.store.fetch(select(inbound).where(inbound.c.code == "INCOMPLETE")))[0]
    rebuilt: list[rules.Record] = []
    seq, prev = 0, rules.GENESIS
    for r in await records(switch):
        data = rules.Record(*r).fields()
        if r.type == "message-in" and data["inbound_id"] == row.id:
            data = {**data, "outcome": "accepted", "code": None}
        if r.type == "checkpoint":
            data = {**data, "head_seq": seq, "head_hash": prev}
        entry = rules.Entry(r.type, switch.clock.now, data, r.trace_id, r.body_sha256)
        [record] = rules.chain([entry], seq, prev)
        record = rules.Record(
            record.seq,
            r.at,
            r.type,
            r.trace_id,
            r.body_sha256,
            record.data,
            prev,
            rules.record_hash(record.seq, r.at, r.type, r.trace_id, r.body_sha256, record.data, prev),
        )
        rebuilt.append(record)
        seq, prev = record.seq, record.hash
    await execute(
        switch,
        delete(audit),
        *(insert(audit).values(**r.__dict__) for r in rebuilt),
        update(audit_head).values(seq=seq, hash=prev),
        update(inbound).where(inbound.c.id == row.id).values(outcome="accepted", code=None),
    )
    report = await verified(switch)
    checkpoint = next(r for r in rebuilt if r.type == "checkpoint")
    assert first_record_named(report) == checkpoint.seq
    assert "rewritten" in report.problems[0]


@pytest.mark.parametrize("interval", [0.0])
async def test_checkpoint_is_skipped_when_nothing_moved(switch: Switch, interval: float) -> None:
    """A second checkpoint with no new record in between adds nothing."""
    await story(switch)
    assert await write_checkpoint(switch.store, switch.pipeline.signer, switch.clock.now) is not None
    assert await write_checkpoint(switch.store, switch.pipeline.signer, switch.clock.now) is None
