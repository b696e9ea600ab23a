"""Builds contract messages as a national system would, for the demo, the tests and the benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from lxml import etree

from gateway.core.model import NS
from gateway.xml.compose import message_root

_T = f"{{{NS}}}"


def _sub(parent: etree._Element, name: str, value: str | None = None, **attrs: str) -> etree._Element:
    """Append a namespaced child."""
    child = etree.SubElement(parent, _T + name, attrs)
    if value is not None:
        child.text = value
    return child


def message(
    kind: str,
    sender: str,
    *,
    trace_id: str | None = None,
    message_id: str | None = None,
    created_at: datetime | None = None,
) -> etree._Element:
    """A root element of `kind` with its `Header`."""
    return message_root(
        kind, sender=sender, now=created_at or datetime.now(UTC), trace_id=trace_id, message_id=message_id
    )


def trace_request(
    sender: str,
    *,
    made_in: str | None = "AT",
    import_marks: Iterable[tuple[str, int | None]] = (),
    exports: Iterable[tuple[str, str, str]] = (),
    omit: Iterable[str] = (),
    serial: str = "BXK291",
    make: str = "Glock",
    confidentiality_guaranteed: bool = True,
    justification: str | None = None,
    trace_id: str | None = None,
    resubmits: str | None = None,
    notes: str = "",
    message_id: str | None = None,
    created_at: datetime | None = None,
) -> etree._Element:
    """A firearm `TraceRequest`; `omit` drops essential items by element name (e.g. "Caliber")."""
    skip = set(omit)
    root = message("TraceRequest", sender, trace_id=trace_id, message_id=message_id, created_at=created_at)
    if resubmits:
        _sub(root, "Resubmits", resubmits)
    firearm = _sub(root, "Firearm")
    for name, value in (
        ("Make", make),
        ("Model", "17 Gen 4"),
        ("Caliber", "9x19mm Parabellum"),
        ("SerialNumber", serial),
        ("CountryOfManufacture", made_in),
    ):
        if name not in skip and value is not None:
            _sub(firearm, name, value)
    for state, year in import_marks:
        mark = _sub(firearm, "ImportMark")
        _sub(mark, "State", state)
        if year is not None:
            _sub(mark, "Year", str(year))
    _sub(firearm, "Type", "pistol")
    illicit = _sub(root, "Illicitness")
    for name, value in (
        ("LegalBasis", "Firearms Control Act, section 3: possession without a licence"),
        ("Circumstances", "Recovered during a vehicle search. " + notes),
    ):
        if name not in skip:
            _sub(illicit, name, value)
    recovery = _sub(root, "Recovery")
    _sub(recovery, "Date", "2026-10-28")
    _sub(recovery, "Place", "Durban")
    _sub(recovery, "Quantity", "1")
    for exporting, importing, when in exports:
        record = _sub(root, "ExportRecord")
        _sub(record, "ExportingState", exporting)
        _sub(record, "ImportingState", importing)
        _sub(record, "Date", when)
    if "IntendedUse" not in skip:
        _sub(root, "IntendedUse", "Criminal investigation; identification of the point of diversion.")
    conf = _sub(root, "Confidentiality", guaranteed="true" if confidentiality_guaranteed else "false")
    if not confidentiality_guaranteed:
        _sub(conf, "Reason", "Court disclosure rules may oblige release to the defence.")
    if justification:
        _sub(root, "IncompleteJustification", justification)
    return root


def reply(
    kind: str, sender: str, trace_id: str, *, created_at: datetime | None = None, **fields: str | list[str] | None
) -> etree._Element:
    """A message within a trace: `fields` are child elements in order (a list repeats the element)."""
    root = message(kind, sender, trace_id=trace_id, created_at=created_at)
    for name, value in fields.items():
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            _sub(root, name, item)
    return root


def trace_response(
    sender: str,
    trace_id: str,
    *,
    restrictions: Iterable[str] = (),
    restriction_text: str | None = None,
    partial_reason: str | None = "",
    partial: bool = False,
    created_at: datetime | None = None,
) -> etree._Element:
    """A `TraceResponse` with an `Exported` outcome, optional restrictions and an optional `Partial`."""
    root = message("TraceResponse", sender, trace_id=trace_id, created_at=created_at)
    outcome = _sub(_sub(root, "Outcome"), "Exported")
    _sub(outcome, "Date", "2021-03-02")
    _sub(outcome, "ImportingState", "MW")
    _sub(outcome, "FinalConsignee", "Police Service, central armoury")
    _sub(root, "LastLegalOwner", "Police Service")
    codes = list(restrictions)
    if codes or restriction_text:
        element = _sub(root, "Restrictions")
        for code in codes:
            _sub(element, "Restriction", code=code)
        if restriction_text:
            _sub(element, "Text", restriction_text)
    if partial:
        element = _sub(root, "Partial")
        if partial_reason:
            _sub(element, "Reason", partial_reason)
        _sub(element, "Text", "Part of the record is withheld.")
    return root


def _firearm(parent: etree._Element, fields: Iterable[tuple[str, str | None]]) -> None:
    """A `Firearm` with the given items, in the contract's order (None leaves one out)."""
    firearm = _sub(parent, "Firearm")
    for name, value in fields:
        if value is not None:
            _sub(firearm, name, value)


def record_report(
    sender: str,
    reference: str,
    *,
    status: str = "stolen",
    serial: str | None = "BXK291",
    make: str | None = "Glock",
    model: str | None = "17 Gen 4",
    caliber: str | None = "9x19mm Parabellum",
    made_in: str | None = "AT",
    on: str = "2026-03-02",
    place: str | None = "Police station armoury",
    created_at: datetime | None = None,
) -> etree._Element:
    """A `RecordReport` (contract 4.3): a firearm lost, stolen, trafficked or smuggled."""
    root = message("RecordReport", sender, created_at=created_at)
    _sub(root, "Reference", reference)
    _sub(root, "Status", status)
    fields = (("Make", make), ("Model", model), ("Caliber", caliber), ("SerialNumber", serial))
    _firearm(root, (*fields, ("CountryOfManufacture", made_in)))
    _sub(root, "Date", on)
    if place:
        _sub(root, "Place", place)
    return root


def record_withdrawal(
    sender: str, reference: str, *, reason: str = "recovered", created_at: datetime | None = None
) -> etree._Element:
    """A `RecordWithdrawal` (contract 4.3)."""
    root = message("RecordWithdrawal", sender, created_at=created_at)
    _sub(root, "Reference", reference)
    _sub(root, "Reason", reason)
    _sub(root, "Text", "Recovered and returned to its owner.")
    return root


def record_query(
    sender: str,
    serial: str | None,
    *,
    make: str | None = None,
    model: str | None = None,
    caliber: str | None = None,
    created_at: datetime | None = None,
    message_id: str | None = None,
) -> etree._Element:
    """A `RecordQuery` (contract 4.3): which records a firearm matches."""
    root = message("RecordQuery", sender, created_at=created_at, message_id=message_id)
    _firearm(root, (("Make", make), ("Model", model), ("Caliber", caliber), ("SerialNumber", serial)))
    return root
