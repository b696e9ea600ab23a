"""The demo's records register (contract 4.3): a theft reported, a seizure elsewhere that tells both states, a
query with a look-alike serial, and a withdrawal after which nothing matches."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.core.model import NS
from gateway.dev import samples
from gateway.dev.npc import Received

if TYPE_CHECKING:
    from gateway.dev.demo import Demo

REFERENCE = "ZA-SAPS-2026-004512"
_T = f"{{{NS}}}"


def _hit(notice: Received | None) -> str:
    """A HitNotice in a few words."""
    if notice is None or notice.kind != "HitNotice":
        return "nothing"
    matched = ", ".join(e.text or "" for e in notice.root.iter(f"{_T}MatchedOn"))
    return (
        f"HitNotice {notice.find('ReportingState')} {notice.find('Reference')} ({notice.find('Status')}), "
        f"found by {notice.find('FoundBy')}: {notice.find('Score')} on {matched}"
    )


def _matches(result: Received | None) -> str:
    """A RecordQueryResult in a few words."""
    if result is None:
        return "(nothing)"
    found = [
        f"{m.findtext(_T + 'ReportingState')} {m.findtext(_T + 'Reference')} {m.findtext(_T + 'Score')}"
        for m in result.root.iter(f"{_T}Match")
    ]
    return "RecordQueryResult: " + ("; ".join(found) or "no match")


async def _notice(demo: Demo, state: str) -> Received | None:
    """The next HitNotice on a state's queue (other messages skipped)."""
    for got in await demo.npcs[state].receive(2, timeout=3):
        if got.kind == "HitNotice":
            return got
    return None


async def register_scenarios(demo: Demo) -> None:
    """Report, seizure and hits, look-alike query, withdrawal, the query again."""
    report = samples.record_report(
        "ZA", REFERENCE, serial="BER-D12345Z", make="Beretta", model="92FS", caliber="9x19mm Parabellum", made_in="IT"
    )
    await demo.exchange("ZA reports a stolen service pistol", "ZA", demo.sign("ZA", report))
    seized = samples.trace_request("KE", serial="ber d12345z", make="BERETTA", made_in="AT")
    await demo.exchange("KE seizes it and asks AT to trace it", "KE", demo.sign("KE", seized), watch="AT")
    row = demo.rows[-1]
    za, ke = await _notice(demo, "ZA"), await _notice(demo, "KE")
    row.detail = f"ZA and KE: {_hit(za)}" if _hit(za) == _hit(ke) else f"ZA: {_hit(za)}; KE: {_hit(ke)}"
    query = samples.record_query("BR", "8ER-DI2345Z", make="Beretta", caliber="9 mm")
    result, _ = await demo.exchange("BR queries a serial read as 8ER-DI2345Z", "BR", demo.sign("BR", query))
    demo.rows[-1].answer = _matches(result)
    gone = samples.record_withdrawal("ZA", REFERENCE)
    await demo.exchange("ZA withdraws it: recovered", "ZA", demo.sign("ZA", gone))
    again = samples.record_query("BR", "BER-D12345Z", make="Beretta")
    result, _ = await demo.exchange("BR queries the exact serial again", "BR", demo.sign("BR", again))
    demo.rows[-1].answer = _matches(result)
