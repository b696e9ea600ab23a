"""Reads typed values out of a verified message's signed content; the completeness check of 6.3 and 8.2."""

from __future__ import annotations

from datetime import date, datetime

from lxml import etree

from gateway.core.model import (
    NS,
    Confidentiality,
    ExportRecord,
    Header,
    ImportMark,
    Restrictions,
    TraceRequestInfo,
)

_T = f"{{{NS}}}"
_HEADER = f"{_T}Header"

# Essential items (ISACS 05.31, 6.3 and 8.2.1; 6.5 for ammunition) with the codes `MissingItem` uses.
FIREARM_ESSENTIALS = (
    ("make", "Make"),
    ("model", "Model"),
    ("caliber", "Caliber"),
    ("serial-number", "SerialNumber"),
    ("country-of-manufacture", "CountryOfManufacture"),
)
AMMUNITION_ESSENTIALS = (
    ("manufacturer", "Manufacturer"),
    ("country-of-manufacture", "CountryOfManufacture"),
    ("lot-number", "LotNumber"),
)
REQUEST_ESSENTIALS = (
    ("legal-basis", "Illicitness/{t}LegalBasis"),
    ("circumstances", "Illicitness/{t}Circumstances"),
    ("intended-use", "IntendedUse"),
)


def text(element: etree._Element | None, path: str) -> str | None:
    """Stripped text of the first `path` below `element` (names without prefix), or None when empty."""
    if element is None:
        return None
    if "/" in path:
        found = element.find(_T + path.replace("/", "/" + _T))
    else:  # the common case, without ElementPath's parsing: the first child of that name
        found = next(element.iterchildren(_T + path), None)
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    return value or None


def _when(value: str) -> datetime:
    """An `xs:dateTime` with a zone (the schema guarantees one) as an aware datetime."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def read_header(root: etree._Element) -> Header:
    """The `Header` of a schema-valid message."""
    header = next(root.iterchildren(_HEADER), None)
    return Header(
        message_id=(text(header, "MessageId") or "").lower(),
        created_at=_when(text(header, "CreatedAt") or ""),
        sender=text(header, "Sender") or "",
        trace_id=(text(header, "TraceId") or "").lower() or None,
    )


def _import_marks(item: etree._Element) -> tuple[ImportMark, ...]:
    """`ImportMark`s in document order."""
    marks = []
    for mark in item.iterfind(f"{_T}ImportMark"):
        state = text(mark, "State")
        year = text(mark, "Year")
        if state:
            marks.append(ImportMark(state=state, year=int(year) if year and year.isdigit() else None))
    return tuple(marks)


def _export_records(root: etree._Element) -> tuple[ExportRecord, ...]:
    """`ExportRecord`s in document order."""
    records = []
    for record in root.iterfind(f"{_T}ExportRecord"):
        exporting, importing, when = (
            text(record, "ExportingState"),
            text(record, "ImportingState"),
            text(record, "Date"),
        )
        if exporting and importing and when:
            records.append(ExportRecord(exporting, importing, date.fromisoformat(when[:10])))
    return tuple(records)


def missing_items(root: etree._Element, item: etree._Element) -> tuple[str, ...]:
    """Codes of the essential items a request lacks, in the order of the standard."""
    kind = etree.QName(item).localname
    essentials = FIREARM_ESSENTIALS if kind == "Firearm" else AMMUNITION_ESSENTIALS
    missing = [code for code, name in essentials if text(item, name) is None]
    if "serial-number" in missing and _unreadable_but_marked(item):
        missing.remove("serial-number")  # 6.4.3: other markings stand in for an unreadable frame
    missing += [code for code, path in REQUEST_ESSENTIALS if text(root, path.format(t="")) is None]
    return tuple(missing)


def _unreadable_but_marked(item: etree._Element) -> bool:
    """`FrameMarkingsUnreadable` is true and other markings are given."""
    flag = text(item, "FrameMarkingsUnreadable")
    others = item.find(f"{_T}Marking") is not None or item.find(f"{_T}OtherSerialNumber") is not None
    return flag in {"true", "1"} and others


def read_confidentiality(element: etree._Element | None) -> Confidentiality:
    """`Confidentiality` (8.4); a missing element reads as guaranteed."""
    if element is None:
        return Confidentiality(guaranteed=True)
    flag = element.get("guaranteed", "true").strip()
    return Confidentiality(guaranteed=flag in {"true", "1"}, reason=text(element, "Reason"))


def read_trace_request(root: etree._Element) -> TraceRequestInfo:
    """The parts of a schema-valid `TraceRequest` that routing and the completeness check use."""
    item = root.find(f"{_T}Firearm")
    if item is None:
        item = root.find(f"{_T}Ammunition")
    assert item is not None, "the schema requires Firearm or Ammunition"
    kind = etree.QName(item).localname
    return TraceRequestInfo(
        header=read_header(root),
        item=kind,
        country_of_manufacture=text(item, "CountryOfManufacture"),
        import_marks=_import_marks(item) if kind == "Firearm" else (),
        export_records=_export_records(root),
        missing_items=missing_items(root, item),
        justified=root.find(f"{_T}IncompleteJustification") is not None,
        confidentiality=read_confidentiality(root.find(f"{_T}Confidentiality")),
        resubmits=(text(root, "Resubmits") or "").lower() or None,
    )


def read_restrictions(root: etree._Element) -> Restrictions | None:
    """`Restrictions` of a `TraceResponse`, or None."""
    element = root.find(f"{_T}Restrictions")
    if element is None:
        return None
    codes = tuple(r.get("code", "") for r in element.iterfind(f"{_T}Restriction"))
    return Restrictions(codes=codes, text=text(element, "Text"))
