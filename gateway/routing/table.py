"""The administrators' routing table: load a TOML file, validate it, identify it by a version hash."""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pycountry

from gateway.core.errors import ConfigurationError
from gateway.core.wire_names import outbound_queue


class StateStatus(StrEnum):
    """Whether a connected state takes messages now."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True)
class StateEntry:
    """One state of the table: its status, the queue its NPC reads, and an optional delegate."""

    code: str
    name: str
    status: StateStatus
    queue: str
    delegate: str | None = None

    @property
    def active(self) -> bool:
        """True when messages may be routed to this state."""
        return self.status is StateStatus.ACTIVE


@dataclass(frozen=True)
class RoutingTable:
    """A validated routing table; `version` is `sha256:` and the hash of its canonical content."""

    states: Mapping[str, StateEntry]
    version: str
    source: str

    def entry(self, code: str) -> StateEntry | None:
        """The entry of `code`, or None when the state is not in the table."""
        return self.states.get(code)

    def party_for(self, code: str) -> str:
        """The NPC that receives for `code`: its delegate where the table names one, else itself."""
        entry = self.states[code]
        return entry.delegate or code

    def queue_for(self, party: str) -> str:
        """The outbound queue of a party of the table."""
        return self.states[party].queue

    def canonical(self) -> str:
        """The canonical JSON this table's version hashes; stored with audit records."""
        return _canonical(self.states)


_KNOWN_KEYS = frozenset({"status", "name", "queue", "delegate"})


def _canonical(states: Mapping[str, StateEntry]) -> str:
    """Key-sorted JSON of the table's meaning: comments and layout do not change the version."""
    body = {
        code: {"status": e.status.value, "name": e.name, "queue": e.queue, "delegate": e.delegate}
        for code, e in sorted(states.items())
    }
    return json.dumps({"states": body}, sort_keys=True, separators=(",", ":"))


def _entry(code: str, raw: Any, where: str) -> StateEntry:
    """One validated `[states.CC]` table."""
    if not isinstance(raw, dict):
        raise ConfigurationError(f"{where}: [states.{code}] must be a table")
    if len(code) != 2 or not code.isupper() or pycountry.countries.get(alpha_2=code) is None:
        raise ConfigurationError(f"{where}: {code!r} is not an ISO 3166-1 alpha-2 code")
    unknown = set(raw) - _KNOWN_KEYS
    if unknown:
        raise ConfigurationError(f"{where}: [states.{code}] has unknown keys: {', '.join(sorted(unknown))}")
    try:
        status = StateStatus(raw.get("status", "active"))
    except ValueError as err:
        raise ConfigurationError(f"{where}: [states.{code}] status must be 'active' or 'suspended'") from err
    country = pycountry.countries.get(alpha_2=code)
    name = str(raw.get("name") or getattr(country, "name", code))
    delegate = raw.get("delegate")
    return StateEntry(code, name, status, str(raw.get("queue") or outbound_queue(code)), delegate)


def _check_delegates(states: Mapping[str, StateEntry], where: str) -> None:
    """A delegate is another active state of the table that does not itself delegate."""
    for code, entry in states.items():
        if entry.delegate is None:
            continue
        target = states.get(entry.delegate)
        if entry.delegate == code or target is None:
            raise ConfigurationError(f"{where}: {code} delegates to {entry.delegate!r}, which is not in the table")
        if target.delegate is not None or not target.active:
            raise ConfigurationError(
                f"{where}: {code} delegates to {entry.delegate}, which must be active and must not delegate itself"
            )


def parse_table(data: Mapping[str, Any], *, where: str, trusted: frozenset[str] | None = None) -> RoutingTable:
    """Validate a decoded table; `trusted` lists states with trust material (checked for active states)."""
    raw_states = data.get("states")
    if not isinstance(raw_states, dict) or not raw_states:
        raise ConfigurationError(f"{where}: the table needs at least one [states.CC] entry")
    unknown = set(data) - {"states"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown top-level keys: {', '.join(sorted(unknown))}")
    states = {code: _entry(code, raw, where) for code, raw in raw_states.items()}
    _check_delegates(states, where)
    if trusted is not None:
        lacking = sorted(c for c, e in states.items() if e.active and e.delegate is None and c not in trusted)
        if lacking:
            raise ConfigurationError(f"{where}: active states without trust material: {', '.join(lacking)}")
    canonical = _canonical(states)
    version = "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
    return RoutingTable(states=states, version=version, source=where)


def load_table(path: Path, *, trusted: frozenset[str] | None = None) -> RoutingTable:
    """Read and validate the TOML routing table at `path`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ConfigurationError(f"{path}: routing table not found") from err
    except tomllib.TOMLDecodeError as err:
        raise ConfigurationError(f"{path}: not valid TOML: {err}") from err
    return parse_table(data, where=str(path), trusted=trusted)
