"""A national register migrated from a CSV file (`tracegate records import FILE --state CC`): each row read into a
`Report` or refused with its line and reason. Pure but for reading the file, which is streamed (a register of
1.5 million rows is never held in memory at once).

Columns (a header row names them; case, spaces, hyphens and underscores in names are ignored):
`reference`, `status`, `serial_number`, `date` (required); `make`, `model`, `caliber`, `country_of_manufacture`,
`place`, `circumstances` (optional). Unknown columns are refused with the file, before any row is read.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO

from gateway.core.errors import ConfigurationError
from gateway.records.matching import Described, serial_key
from gateway.records.register import STATUSES, Report

REQUIRED = ("reference", "status", "serialnumber", "date")
OPTIONAL = ("make", "model", "caliber", "countryofmanufacture", "place", "circumstances")
_ALIASES = {"serial": "serialnumber", "country": "countryofmanufacture", "calibre": "caliber"}
_REFERENCE = re.compile(r"^[^\s\x00-\x1f\x7f]+( [^\s\x00-\x1f\x7f]+)*$")  # the XSD's RecordReference
_COUNTRY = re.compile(r"^[A-Z]{2}$")
MAX_SHORT = 200  # make, model, caliber, serial: as the XSD's short texts
MAX_LONG = 4000  # place, circumstances: as the XSD's long texts


@dataclass(frozen=True)
class Refusal:
    """A row not taken: its line in the file and why."""

    line: int
    reason: str


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes (the audit names the file by it)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _column(name: str) -> str:
    """A header's name as compared: case, spaces, hyphens and underscores ignored."""
    folded = re.sub(r"[\s_\-]", "", name.strip().lower())
    return _ALIASES.get(folded, folded)


def _header(names: list[str], where: str) -> list[str]:
    """The columns, or ConfigurationError naming what is missing or unknown."""
    columns = [_column(n) for n in names]
    unknown = [n for n, c in zip(names, columns, strict=True) if c not in REQUIRED + OPTIONAL]
    missing = [c for c in REQUIRED if c not in columns]
    if unknown or missing:
        said = [
            f"unknown column(s) {', '.join(unknown)}" if unknown else "",
            f"missing {', '.join(missing)}" if missing else "",
        ]
        raise ConfigurationError(
            f"{where}: {'; '.join(s for s in said if s)} (columns: {', '.join(REQUIRED + OPTIONAL)})"
        )
    return columns


def _report(values: dict[str, str]) -> Report | str:
    """A row as a `Report`, or why it cannot be taken."""
    reference, status = values.get("reference", ""), values.get("status", "").lower()
    if len(reference) > 64 or not _REFERENCE.match(reference):
        return "reference must be 1 to 64 printable characters, words separated by single spaces"
    if status not in STATUSES:
        return f"status {status!r} is not one of {', '.join(STATUSES)}"
    serial = values.get("serialnumber", "")
    if not serial_key(serial):
        return "serial_number is empty"
    try:
        when = date.fromisoformat(values.get("date", ""))
    except ValueError:
        return f"date {values.get('date', '')!r} is not a date (YYYY-MM-DD)"
    country = values.get("countryofmanufacture", "").upper() or None
    if country is not None and not _COUNTRY.match(country):
        return f"country_of_manufacture {country!r} is not a two-letter ISO 3166 code"
    for name in ("serialnumber", "make", "model", "caliber"):
        if len(values.get(name, "")) > MAX_SHORT:
            return f"{name} is over {MAX_SHORT} characters"
    for name in ("place", "circumstances"):
        if len(values.get(name, "")) > MAX_LONG:
            return f"{name} is over {MAX_LONG} characters"
    firearm = Described(
        serial=serial,
        make=values.get("make") or None,
        model=values.get("model") or None,
        caliber=values.get("caliber") or None,
        country=country,
    )
    return Report(
        reference, status, firearm, when.isoformat(), values.get("place") or None, values.get("circumstances") or None
    )


def read_rows(handle: IO[str], where: str) -> Iterator[tuple[int, Report | Refusal]]:
    """Each data row with its line number: a `Report`, or a `Refusal` (a reference repeated in the file is refused:
    which of the two rows a state meant cannot be known)."""
    reader = csv.reader(handle)
    try:
        names = next(reader)
    except StopIteration:
        raise ConfigurationError(f"{where}: the file is empty (a header row names the columns)") from None
    except csv.Error as err:
        raise ConfigurationError(f"{where}: not CSV ({err})") from err
    columns = _header(names, where)
    seen: dict[str, int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield reader.line_num, Refusal(reader.line_num, f"not CSV: {err}")
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            yield line, Refusal(line, f"{len(row)} fields where the header has {len(columns)}")
            continue
        found = _report({c: cell.strip() for c, cell in zip(columns, row, strict=True)})
        if isinstance(found, str):
            yield line, Refusal(line, found)
        elif found.reference in seen:
            yield line, Refusal(line, f"reference {found.reference} repeats line {seen[found.reference]}")
        else:
            seen[found.reference] = line
            yield line, found
