"""The register's rules (contract 4.3): a record reported, updated or withdrawn, and the records a firearm matches.
Pure: values in, values out; the store keeps the records, `core.decide` applies these rules to each message.

A record is keyed by (reporting state, `Reference`). A second report with the same key updates it (a new version;
the store keeps every version); a withdrawal ends it, by the reporting state only; a report after a withdrawal
makes it active again. Only active records match.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.core.errors import ErrorCode, Refused
from gateway.records.matching import SCORE_EXACT, Described, Makes, Match, compare, serial_key, shape_key

STATUSES = ("lost", "stolen", "trafficked", "smuggled")
WITHDRAWN = "withdrawn"
WITHDRAWAL_REASONS = ("recovered", "erroneous", "other")
# The most matches one answer lists (exact ones first): a RecordQueryResult stays far inside the size cap, and a
# serial that many records share (a reporting fault) costs an answer no more than this.
MAX_MATCHES = 100


class Change:
    """What a register change was (the history's and the audit's word for it)."""

    REPORTED = "reported"
    UPDATED = "updated"
    WITHDRAWN = "withdrawn"
    IMPORTED = "imported"


@dataclass(frozen=True)
class Report:
    """What a `RecordReport` (or an imported row) says."""

    reference: str
    status: str
    firearm: Described
    date: str  # the loss, theft or trafficking, as an ISO date
    place: str | None = None
    circumstances: str | None = None


@dataclass(frozen=True)
class Withdrawal:
    """What a `RecordWithdrawal` says."""

    reference: str
    reason: str
    text: str | None = None


@dataclass(frozen=True)
class RegisterRecord:
    """One record of the register, as its latest version stands."""

    state: str
    reference: str
    status: str  # one of STATUSES, or WITHDRAWN
    firearm: Described
    date: str
    place: str | None
    circumstances: str | None
    reported_at: datetime  # first reported
    updated_at: datetime  # this version
    version: int
    source: str  # the MessageId of the message that made this version, or "import:<file SHA-256>"
    withdrawal_reason: str | None = None
    withdrawal_text: str | None = None
    reported_status: str | None = None  # the status before a withdrawal (what a hit would have said)

    @property
    def key(self) -> tuple[str, str]:
        """(reporting state, reference): the record's identity."""
        return self.state, self.reference

    @property
    def active(self) -> bool:
        """Whether the record is matched against (not withdrawn)."""
        return self.status != WITHDRAWN

    @property
    def shape(self) -> str:
        """Its serial's look-alike key: what the store indexes and candidates are found by."""
        return shape_key(self.firearm.serial or "")


@dataclass(frozen=True)
class RegisterChange:
    """A record's new version and how it came about."""

    record: RegisterRecord
    change: str
    new: bool  # no earlier version exists


@dataclass(frozen=True)
class Hit:
    """A trace request's firearm matched an active record: told to the reporting state and the finder, once per
    (record, trace)."""

    state: str  # the reporting state
    reference: str
    status: str
    trace_id: str
    found_by: str
    match: Match
    at: datetime

    @property
    def key(self) -> tuple[str, str, str]:
        """(reporting state, reference, trace): one hit per record and trace."""
        return self.state, self.reference, self.trace_id


def require_serial(firearm: Described, kind: str) -> None:
    """INCOMPLETE when the firearm has no serial number to match on (contract 4.3)."""
    if not serial_key(firearm.serial or ""):
        raise Refused(
            ErrorCode.INCOMPLETE,
            f"a {kind} must give Firearm/SerialNumber (contract 4.3): the register matches on serial numbers",
        )


def report(existing: RegisterRecord | None, state: str, says: Report, *, source: str, now: datetime) -> RegisterChange:
    """A record reported for the first time, or a new version of an existing one (also after a withdrawal)."""
    if says.status not in STATUSES:
        raise Refused(ErrorCode.SCHEMA_INVALID, f"Status must be one of {', '.join(STATUSES)}")
    record = RegisterRecord(
        state=state,
        reference=says.reference,
        status=says.status,
        firearm=says.firearm,
        date=says.date,
        place=says.place,
        circumstances=says.circumstances,
        reported_at=existing.reported_at if existing else now,
        updated_at=now,
        version=existing.version + 1 if existing else 1,
        source=source,
    )
    change = Change.REPORTED if existing is None else Change.UPDATED
    return RegisterChange(record, change, new=existing is None)


def withdraw(
    existing: RegisterRecord | None,
    holders: Iterable[str],
    sender: str,
    says: Withdrawal,
    *,
    source: str,
    now: datetime,
) -> RegisterChange:
    """The reporting state withdraws its record; `holders` are the states holding a record of that reference.

    UNKNOWN_RECORD when no state holds it; NOT_AUTHORIZED when only others do (only the reporting state withdraws
    its record); INVALID_STATE when it is withdrawn already."""
    if existing is None:
        if any(h != sender for h in holders):
            raise Refused(
                ErrorCode.NOT_AUTHORIZED,
                f"record {says.reference} was reported by another state: only the reporting state withdraws it",
            )
        raise Refused(ErrorCode.UNKNOWN_RECORD, f"{sender} has reported no record {says.reference}")
    if not existing.active:
        raise Refused(ErrorCode.INVALID_STATE, f"record {says.reference} is withdrawn already")
    record = dataclasses.replace(
        existing,
        status=WITHDRAWN,
        updated_at=now,
        version=existing.version + 1,
        source=source,
        withdrawal_reason=says.reason,
        withdrawal_text=says.text,
        reported_status=existing.status,
    )
    return RegisterChange(record, Change.WITHDRAWN, new=False)


def matches(query: Described, candidates: Iterable[RegisterRecord], makes: Makes) -> list[tuple[RegisterRecord, Match]]:
    """The active candidates the firearm matches: exact before probable, then by state and reference; at most
    `MAX_MATCHES`."""
    found = []
    for record in candidates:
        if not record.active:
            continue
        match = compare(query, record.firearm, makes)
        if match is not None:
            found.append((record, match))
    found.sort(key=lambda pair: (pair[1].score != SCORE_EXACT, pair[0].state, pair[0].reference))
    return found[:MAX_MATCHES]


def hits_for(
    trace_id: str,
    found_by: str,
    firearm: Described,
    candidates: Iterable[RegisterRecord],
    makes: Makes,
    *,
    known: set[tuple[str, str, str]],
    now: datetime,
) -> list[Hit]:
    """The hits a trace request makes: every active record its firearm matches that this trace has not hit yet."""
    hits = []
    for record, match in matches(firearm, candidates, makes):
        hit = Hit(record.state, record.reference, record.status, trace_id, found_by, match, now)
        if hit.key not in known:
            hits.append(hit)
    return hits
