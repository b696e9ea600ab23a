"""The register in the pure core: a batch's reports, withdrawals and trace requests decided against a snapshot of
values, each later message seeing what the earlier ones of the batch did."""

from __future__ import annotations

from dataclasses import replace

from gateway.core.decide import decide
from gateway.core.model import TraceStatus
from gateway.core.snapshot import Arrival, Snapshot, wanted
from gateway.dev import samples
from gateway.records.matching import Described, shape_key
from gateway.records.register import RegisterRecord

from .test_decide import NOW, RULES, arrival, kinds

RECORD = RegisterRecord(
    state="ZA",
    reference="ZA-1",
    status="stolen",
    firearm=Described("BER-D12345Z", "Beretta", "92FS", "9x19mm", "IT"),
    date="2026-03-02",
    place=None,
    circumstances=None,
    reported_at=NOW,
    updated_at=NOW,
    version=1,
    source="0b8f4a21-6c3d-4e1f-8a9b-2c7d5e3f1a10",
)
SHAPE = shape_key("BER-D12345Z")


def request(state: str = "KE", serial: str = "BERD12345Z") -> Arrival:
    """A firearm trace request routed to AT for a Beretta."""
    return arrival(samples.trace_request(state, serial=serial, make="Beretta", made_in="AT"))


def test_wanted_names_the_serials_references_and_resubmitted_traces_a_batch_needs() -> None:
    """One probe key per serial (look-alikes fold alike); the references a report or withdrawal names."""
    batch = [
        arrival(samples.trace_request("KE", serial="ber-d12345z")),
        arrival(samples.record_query("BR", "8ER D1234SZ")),
        arrival(samples.record_withdrawal("ZA", "ZA-1")),
    ]
    found = wanted(batch)
    assert found.shapes == (SHAPE,) and found.references == ("ZA-1",) and found.hit_traces == ()


def test_a_request_hits_a_stored_record_and_both_states_are_told() -> None:
    """Routed as usual, plus a HitNotice to the reporting state and to the finder; the hit is recorded."""
    (d,) = decide(Snapshot(candidates={SHAPE: (RECORD,)}), [request()], RULES)
    assert kinds(d) == [("Delivery", "AT"), ("Receipt", "KE"), ("HitNotice", "ZA"), ("HitNotice", "KE")]
    [hit] = d.hits
    assert (hit.state, hit.reference, hit.found_by, hit.match.score) == ("ZA", "ZA-1", "KE", "exact")


def test_a_report_earlier_in_the_batch_is_hit_and_a_withdrawal_earlier_ends_it() -> None:
    """Report then request in one batch: a hit; withdrawal then request: none; nothing read from the store."""
    report = arrival(samples.record_report("ZA", "ZA-2", serial="BER-D12345Z", make="Beretta"))
    withdrawal = arrival(samples.record_withdrawal("ZA", "ZA-2"))
    first, hit, gone, miss = decide(Snapshot(), [report, request(), withdrawal, request("BR")], RULES)
    assert first.register[0].new and kinds(first) == [("Receipt", "ZA")]
    assert [h.reference for h in hit.hits] == ["ZA-2"]
    assert gone.register[0].record.status == "withdrawn" and gone.register[0].record.version == 2
    assert miss.hits == () and ("HitNotice", "ZA") not in kinds(miss)


def test_a_state_finding_its_own_record_gets_one_notice_and_a_known_hit_none() -> None:
    """The reporting state tracing its own record is told once; a trace that hit the record already, not again."""
    (own,) = decide(Snapshot(candidates={SHAPE: (RECORD,)}), [request("ZA")], RULES)
    assert [k for k in kinds(own) if k[0] == "HitNotice"] == [("HitNotice", "ZA")]
    opened = own.trace
    assert opened is not None
    returned = replace(opened, status=TraceStatus.RETURNED)
    again = samples.trace_request(
        "ZA", serial="BERD12345Z", make="Beretta", made_in="AT", trace_id=opened.trace_id, resubmits=opened.trace_id
    )
    snapshot = Snapshot(
        traces={opened.trace_id: returned},
        candidates={SHAPE: (RECORD,)},
        hits=frozenset({("ZA", "ZA-1", opened.trace_id)}),
    )
    (d,) = decide(snapshot, [arrival(again)], RULES)
    assert d.outcome.outcome == "accepted", d.outcome.detail
    assert d.hits == () and all(k[0] != "HitNotice" for k in kinds(d))


def test_an_update_that_changes_the_serial_stops_the_old_serial_matching() -> None:
    """A second report with another serial, earlier in the batch, leaves the stored version's serial unmatched."""
    update = arrival(samples.record_report("ZA", "ZA-1", serial="NEW-1", make="Beretta"))
    changed, after = decide(
        Snapshot(records={("ZA", "ZA-1"): RECORD}, candidates={SHAPE: (RECORD,)}),
        [update, request()],
        RULES,
    )
    assert not changed.register[0].new and changed.register[0].record.version == 2
    assert after.hits == ()


def test_a_reporting_state_gone_from_the_table_is_not_sent_a_notice_but_the_hit_is_kept() -> None:
    """A record of a state no longer connected still hits: the finder is told, the hit recorded, nothing queued
    for a state without a queue."""
    gone = replace(RECORD, state="NZ", reference="NZ-1")
    (d,) = decide(Snapshot(candidates={SHAPE: (gone,)}), [request()], RULES)
    assert [k for k in kinds(d) if k[0] == "HitNotice"] == [("HitNotice", "KE")]
    assert [h.state for h in d.hits] == ["NZ"]
