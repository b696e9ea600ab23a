"""The records register through the switch (contract 4.3): reports, hits on trace requests, queries, withdrawals."""

from __future__ import annotations

from sqlalchemy import func, select

from gateway.audit.replay import replay
from gateway.core.errors import ErrorCode
from gateway.dev import samples
from gateway.store.tables import record_history, record_hits

from .conftest import Got, Switch

REF = "ZA-SAPS-2026-004512"


async def report(switch: Switch, state: str = "ZA", reference: str = REF, **fields: object) -> Got:
    """Report a record (a Beretta by default); its Receipt."""
    options: dict[str, object] = {"serial": "BER-D12345Z", "make": "Beretta", "model": "92FS", **fields}
    outcome = await switch.send(state, samples.record_report(state, reference, **options))  # type: ignore[arg-type]
    assert outcome.outcome == "accepted", outcome.detail
    [receipt] = switch.take(state)
    assert receipt.kind == "Receipt"
    return receipt


async def trace(switch: Switch, state: str, serial: str, make: str = "BERETTA") -> str:
    """A firearm trace request routed to AT (its country of manufacture); its TraceId."""
    outcome = await switch.send(state, samples.trace_request(state, serial=serial, make=make, made_in="AT"))
    assert outcome.outcome == "accepted" and outcome.routed_to == "AT", outcome.detail
    assert outcome.trace_id
    return outcome.trace_id


def notices(got: list[Got]) -> list[Got]:
    """The HitNotices among what a state received."""
    return [g for g in got if g.kind == "HitNotice"]


def matched_on(got: Got) -> list[str]:
    """`MatchedOn` items of a HitNotice or a Match."""
    return [e.text or "" for e in got.root.iter("{urn:itrace:1}MatchedOn")]


async def test_a_seizure_elsewhere_tells_the_reporting_and_the_requesting_state(switch: Switch) -> None:
    """ZA reports a stolen pistol; KE's trace request for it is routed as usual and both states get a HitNotice."""
    receipt = await report(switch)
    assert receipt.find("Status") == "stolen"
    trace_id = await trace(switch, "KE", "ber d12345z")
    [delivery] = switch.take("AT")
    assert delivery.kind == "Delivery"
    to_ke, to_za = switch.take("KE"), switch.take("ZA")
    assert sorted(g.kind for g in to_ke) == ["HitNotice", "Receipt"]
    for notice in (notices(to_ke)[0], notices(to_za)[0]):
        assert (notice.find("Reference"), notice.find("ReportingState"), notice.find("Status")) == (REF, "ZA", "stolen")
        assert (notice.find("FoundBy"), notice.find("TraceId"), notice.find("Score")) == ("KE", trace_id, "exact")
        assert matched_on(notice) == ["serial-number", "make", "caliber", "country-of-manufacture"]
    async with switch.store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(record_hits))).scalar_one() == 1


async def test_a_look_alike_serial_is_a_probable_hit_and_another_make_none(switch: Switch) -> None:
    """A serial with look-alike characters hits as probable; the same serial on a different make does not hit."""
    await report(switch)
    await trace(switch, "KE", "8ER-DI2345Z")
    [notice] = notices(switch.take("ZA"))
    assert notice.find("Score") == "probable"
    switch.take("KE")
    switch.take("AT")
    await trace(switch, "BR", "BER-D12345Z", make="Glock")
    assert notices(switch.take("ZA")) == [] and notices(switch.take("BR")) == []


async def test_a_query_answers_at_once_with_exact_and_probable_matches(switch: Switch) -> None:
    """A RecordQuery gets its RecordQueryResult at once; exact before probable; nothing after a withdrawal."""
    await report(switch)
    await report(switch, "MZ", "MZ-PRM-77", serial="BER-DI2345Z", status="trafficked")
    query = samples.record_query("BR", "ber d12345z", make="BERETTA", caliber="9 mm")
    outcome = await switch.send("BR", query)
    assert outcome.outcome == "accepted", outcome.detail
    [result] = switch.take("BR")
    assert result.kind == "RecordQueryResult" and result.find("QueryMessageId") == outcome.message_id
    matches = result.root.findall("{urn:itrace:1}Match")
    found = [(m.findtext("{urn:itrace:1}Reference"), m.findtext("{urn:itrace:1}Score")) for m in matches]
    assert found == [(REF, "exact"), ("MZ-PRM-77", "probable")]
    gone = await switch.send("ZA", samples.record_withdrawal("ZA", REF))
    assert gone.outcome == "accepted", gone.detail
    [receipt] = switch.take("ZA")
    assert receipt.find("Status") == "withdrawn"
    await switch.send("BR", samples.record_query("BR", "BERD12345Z"))
    [result] = switch.take("BR")
    assert [m.findtext("{urn:itrace:1}Reference") for m in result.root.findall("{urn:itrace:1}Match")] == ["MZ-PRM-77"]
    await trace(switch, "KE", "BER-D12345Z")
    assert notices(switch.take("ZA")) == []


async def test_withdrawals_by_others_and_of_unknown_records_are_refused(switch: Switch) -> None:
    """Only the reporting state withdraws its record; an unknown reference and a second withdrawal have codes."""
    await report(switch)
    for state, reference, code in (
        ("BR", REF, ErrorCode.NOT_AUTHORIZED),
        ("ZA", "ZA-NOPE-1", ErrorCode.UNKNOWN_RECORD),
    ):
        outcome = await switch.send(state, samples.record_withdrawal(state, reference))
        assert (outcome.outcome, outcome.code) == ("refused", code.value), outcome.detail
        [rejection] = switch.take(state)
        assert rejection.find("Code") == code.value
    assert (await switch.send("ZA", samples.record_withdrawal("ZA", REF))).outcome == "accepted"
    again = await switch.send("ZA", samples.record_withdrawal("ZA", REF))
    assert again.code == ErrorCode.INVALID_STATE.value


async def test_a_report_without_a_serial_is_incomplete_and_an_update_keeps_history(switch: Switch) -> None:
    """A report must give a serial; a second report of a reference updates the record, both versions kept."""
    outcome = await switch.send("ZA", samples.record_report("ZA", "ZA-1", serial=None))
    assert outcome.code == ErrorCode.INCOMPLETE.value
    switch.take("ZA")
    await report(switch, reference="ZA-1")
    receipt = await report(switch, reference="ZA-1", status="trafficked")
    assert receipt.find("Status") == "trafficked"
    async with switch.store.engine.connect() as conn:
        rows = (await conn.execute(select(record_history.c.version, record_history.c.status))).all()
    assert sorted(tuple(r) for r in rows) == [(1, "stolen"), (2, "trafficked")]


async def test_one_hit_per_record_and_trace_and_replay_agrees(switch: Switch) -> None:
    """A repeated request makes no second hit; the audit replays with no divergence, register and hits included."""
    await report(switch)
    request = switch.sign("KE", samples.trace_request("KE", serial="BERD12345Z", make="Beretta", made_in="AT"))
    await switch.send("KE", request)
    again = await switch.send("KE", request)
    assert again.outcome == "duplicate"
    assert len(notices(switch.take("ZA"))) == 1
    await switch.send("ZA", samples.record_withdrawal("ZA", REF))
    async with switch.store.engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(record_hits))).scalar_one() == 1
    result = await replay(switch.store, switch.settings)
    assert result.ok, [str(d) for d in result.divergences]
    assert result.replayed == 3  # the repeat recorded no decision of its own
