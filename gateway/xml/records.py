"""The records register's messages (contract 4.3): reading `RecordReport`, `RecordWithdrawal`, `RecordQuery` and a
trace request's firearm, and composing `RecordQueryResult` and `HitNotice` for the gateway's signature."""

from __future__ import annotations

from datetime import datetime

from lxml import etree

from gateway.core.model import NS
from gateway.records.matching import Described, Match
from gateway.records.register import Hit, RegisterRecord, Report, Withdrawal
from gateway.xml.compose import gateway_root, sub
from gateway.xml.read import text

_T = f"{{{NS}}}"


def read_described(firearm: etree._Element | None) -> Described | None:
    """What a `Firearm` element says that matching uses (None without one: an ammunition request)."""
    if firearm is None:
        return None
    return Described(
        serial=text(firearm, "SerialNumber"),
        make=text(firearm, "Make"),
        model=text(firearm, "Model"),
        caliber=text(firearm, "Caliber"),
        country=text(firearm, "CountryOfManufacture"),
    )


def firearm_of(root: etree._Element) -> Described | None:
    """The firearm of a `TraceRequest`, `RecordReport` or `RecordQuery` (None for ammunition)."""
    return read_described(next(root.iterchildren(f"{_T}Firearm"), None))


def read_report(root: etree._Element) -> Report:
    """A schema-valid `RecordReport`."""
    firearm = firearm_of(root)
    assert firearm is not None, "the schema requires Firearm"
    return Report(
        reference=text(root, "Reference") or "",
        status=text(root, "Status") or "",
        firearm=firearm,
        date=(text(root, "Date") or "")[:10],
        place=text(root, "Place"),
        circumstances=text(root, "Circumstances"),
    )


def read_withdrawal(root: etree._Element) -> Withdrawal:
    """A schema-valid `RecordWithdrawal`."""
    return Withdrawal(
        reference=text(root, "Reference") or "", reason=text(root, "Reason") or "", text=text(root, "Text")
    )


def _matched(parent: etree._Element, match: Match) -> None:
    """`Score` and the `MatchedOn` list."""
    sub(parent, "Score", match.score)
    for item in match.matched_on:
        sub(parent, "MatchedOn", item)


def record_query_result(*, now: datetime, query_id: str, found: list[tuple[RegisterRecord, Match]]) -> etree._Element:
    """`RecordQueryResult`: every active record the queried firearm matches, exact ones first."""
    root = gateway_root("RecordQueryResult", now, None)
    sub(root, "QueryMessageId", query_id)
    for record, match in found:
        element = sub(root, "Match")
        sub(element, "ReportingState", record.state)
        sub(element, "Reference", record.reference)
        sub(element, "Status", record.status)
        sub(element, "Date", record.date)
        _matched(element, match)
    return root


def hit_notice(*, now: datetime, hit: Hit) -> etree._Element:
    """`HitNotice`: a trace request's firearm matched a record (to the reporting state and to the finder)."""
    root = gateway_root("HitNotice", now, None)
    sub(root, "Reference", hit.reference)
    sub(root, "ReportingState", hit.state)
    sub(root, "Status", hit.status)
    sub(root, "FoundBy", hit.found_by)
    sub(root, "TraceId", hit.trace_id)
    _matched(root, hit.match)
    return root
