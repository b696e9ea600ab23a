"""Whether a firearm a message describes is a firearm the register holds (contract 4.3): the normalised keys of a
serial number, the administrators' alias list of makes, and the comparison that scores a match and names what
agreed. Pure: the only I/O is `Makes.load` reading the alias list's TOML file.

Serial numbers compare with case, spaces, hyphens, dots and slashes ignored (`serial_key`); look-alike characters
(O/0, I/1/L, S/5, B/8, Z/2) make a match `probable`, not `exact` (`shape_key`, the key the store indexes). A make
that disagrees, after case and common spellings, excludes a match; a missing make does not. Model, caliber and
country of manufacture never exclude one: they are only named in `MatchedOn` when they agree.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from gateway.core.errors import ConfigurationError

SCORE_EXACT = "exact"
SCORE_PROBABLE = "probable"

# The contract's `MatchedOn` codes, in the order a match lists them.
MATCHED_ON_ORDER = ("serial-number", "make", "model", "caliber", "country-of-manufacture")

# A character a clerk or a worn stamping confuses with another, and the form both fold to (keys are upper case:
# they apply to a `serial_key`).
LOOK_ALIKES: Mapping[str, str] = MappingProxyType({"O": "0", "I": "1", "L": "1", "S": "5", "B": "8", "Z": "2"})
_FOLD = str.maketrans(dict(LOOK_ALIKES))

# What clerks write between a serial's characters: hyphens and dashes (a word processor turns '-' into these; the
# soft hyphen is invisible), dots and slashes. Whitespace goes by `str.isspace`, which includes the no-break spaces.
_DASHES = "-\u00ad\u2010\u2011\u2012\u2013\u2014\u2015\u2212"
# Invisible characters that are not whitespace to Unicode but arrive pasted from spreadsheets and web forms; kept,
# they would make two writings of one serial differ where nobody can see it.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_IGNORED = frozenset(_DASHES + "./\\" + _INVISIBLE)
# Normalising, upper-casing and removing interact at the edges of Unicode (a removed hyphen can bring a letter and
# a combining accent together, which normalising then composes; upper-casing can yield a character normalising
# changes): `serial_key` repeats its pass until nothing changes, so the key of a key is the key. Real serials settle
# in one pass (the second only confirms); the bound only guards against a cycle nobody has found.
_MAX_PASSES = 8


def _serial_pass(text: str) -> str:
    """One pass of `serial_key`: NFKC, upper case (through `casefold`, so 'ß' and 'ﬀ' fold), ignored characters out."""
    upper = unicodedata.normalize("NFKC", text).casefold().upper()
    return "".join(c for c in upper if not c.isspace() and c not in _IGNORED)


def serial_key(serial: str) -> str:
    """The serial number as matching compares it: case, whitespace, hyphens and dashes, dots and slashes ignored
    ("" when nothing is left). Two serials are an exact match when their keys are equal."""
    key = _serial_pass(serial)
    for _ in range(_MAX_PASSES):
        again = _serial_pass(key)
        if again == key:
            break
        key = again
    return key


def _fold(key: str) -> str:
    """A `serial_key` with every look-alike character folded."""
    return key.translate(_FOLD)


def shape_key(serial: str) -> str:
    """The serial's `serial_key` with look-alike characters folded ("BER-D12345Z" and "8ERD1Z345Z" alike): the key
    the store indexes, so that a probable match is one index probe, never a scan."""
    return _fold(serial_key(serial))


def plain(text: str | None) -> str | None:
    """`text` with case and every character but letters and digits removed (after NFKC), as makes, models and
    calibers compare; None when nothing is left."""
    if text is None:
        return None
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(c for c in folded if c.isalnum()) or None


def _index(groups: Mapping[str, Sequence[str]], where: str) -> dict[str, str]:
    """Every spelling's `plain` form, to its canonical make's `plain` form; `ConfigurationError` when a spelling
    has no letters or digits or two different makes claim it."""
    index: dict[str, str] = {}
    claimant: dict[str, str] = {}  # plain spelling -> the canonical name, as written, that claimed it first
    for name, spellings in groups.items():
        key = plain(name)
        if key is None:
            raise ConfigurationError(f"{where}: [makes] {name!r}: a make needs letters or digits")
        if isinstance(spellings, str):  # a str is a Sequence[str] too: one spelling would become its letters
            raise ConfigurationError(f"{where}: [makes] {name!r}: the spellings must be a list, not a string")
        for spelling in (name, *spellings):
            folded = plain(spelling)
            if folded is None:
                raise ConfigurationError(f"{where}: [makes] {name!r}: spelling {spelling!r} has no letters or digits")
            owner = claimant.setdefault(folded, name)
            # Two canonical names equal after `plain` are one make written twice: harmless, so not refused.
            if index.setdefault(folded, key) != key:
                raise ConfigurationError(
                    f"{where}: spelling {spelling!r} is claimed by two makes: [makes] {owner!r} and {name!r}"
                )
    return index


def _canonical_form(groups: Mapping[str, Sequence[str]]) -> str:
    """The groups as one text independent of their order and of repeated spellings: what `Makes.version` hashes."""
    ordered = {name: sorted(set(spellings)) for name, spellings in groups.items()}
    return json.dumps(ordered, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class Makes:
    """The administrators' alias list of firearm makes: each canonical make with its other spellings (legal names,
    abbreviations), so that "GLOCK", "Glock Ges.m.b.H." and "Glock GmbH" are one make. Spellings compare after
    `plain`, so case, spaces and punctuation need no entries of their own."""

    def __init__(self, groups: Mapping[str, Sequence[str]], *, where: str = "the alias list of makes") -> None:
        self._index = _index(groups, where)
        self._version = hashlib.sha256(_canonical_form(groups).encode("utf-8")).hexdigest()
        self._count = len(groups)

    @classmethod
    def none(cls) -> Makes:
        """An empty alias list: makes compare after `plain` only."""
        return cls({})

    @classmethod
    def load(cls, path: Path) -> Makes:
        """Read and validate the TOML alias list at `path` (see `parse`)."""
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise ConfigurationError(f"{path}: alias list of makes not found") from err
        except UnicodeDecodeError as err:
            raise ConfigurationError(f"{path}: not UTF-8: {err}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigurationError(f"{path}: not valid TOML: {err}") from err
        return cls.parse(data, where=str(path))

    @classmethod
    def parse(cls, data: Mapping[str, object], *, where: str) -> Makes:
        """Validate a parsed alias list: one table `[makes]` whose keys are canonical makes and whose values are
        lists of strings; `ConfigurationError` naming `where` and the offending key otherwise."""
        unknown = sorted(str(key) for key in data if key != "makes")
        if unknown:
            raise ConfigurationError(f"{where}: unknown top-level keys: {', '.join(unknown)} (only [makes] is read)")
        if "makes" not in data:
            raise ConfigurationError(f"{where}: no [makes] table")
        raw = data["makes"]
        if not isinstance(raw, Mapping):
            raise ConfigurationError(f"{where}: makes must be a table [makes], not {type(raw).__name__}")
        groups: dict[str, list[str]] = {}
        for name, spellings in raw.items():
            if not isinstance(name, str):
                raise ConfigurationError(f"{where}: [makes] {name!r}: a make must be a string")
            if not isinstance(spellings, list):
                raise ConfigurationError(
                    f"{where}: [makes] {name!r}: must be a list of spellings, not {type(spellings).__name__}"
                )
            for spelling in spellings:
                if not isinstance(spelling, str):
                    raise ConfigurationError(f"{where}: [makes] {name!r}: spelling {spelling!r} is not a string")
            groups[name] = spellings
        return cls(groups, where=where)

    @property
    def version(self) -> str:
        """SHA-256 (hex) of the list's canonical form: the audit names with it which alias list was in force."""
        return self._version

    def canonical(self, make: str | None) -> str | None:
        """The `plain` form of the canonical make `make` is a spelling of; `plain(make)` for a make not listed."""
        folded = plain(make)
        if folded is None:
            return None
        return self._index.get(folded, folded)

    def __eq__(self, other: object) -> bool:
        """Equal when built from the same groups (whatever their order): `Rules` compare by value."""
        if not isinstance(other, Makes):
            return NotImplemented
        return self._version == other._version

    def __hash__(self) -> int:
        """Consistent with `__eq__`."""
        return hash(self._version)

    def __repr__(self) -> str:
        """The number of makes and the version, enough to tell two lists apart in a log."""
        return f"Makes({self._count} makes, version {self._version[:12]})"


@dataclass(frozen=True)
class Described:
    """What a message says of a firearm, as matching uses it (each item as written; None when not given)."""

    serial: str | None
    make: str | None = None
    model: str | None = None
    caliber: str | None = None
    country: str | None = None


@dataclass(frozen=True)
class Match:
    """A match: its score (`SCORE_EXACT` or `SCORE_PROBABLE`) and what agreed, in `MATCHED_ON_ORDER`."""

    score: str
    matched_on: tuple[str, ...]


def _country(code: str | None) -> str | None:
    """A country of manufacture as compared: case and surrounding whitespace ignored; None when not given."""
    if code is None:
        return None
    return code.strip().casefold() or None


def _agree(left: str | None, right: str | None) -> bool:
    """Both given and equal."""
    return left is not None and left == right


def compare(query: Described, record: Described, makes: Makes) -> Match | None:
    """Whether the firearm `query` describes matches the register's `record`, and how: None unless the serials
    agree at least up to look-alike characters and the makes, where both are given, are one make."""
    query_key, record_key = serial_key(query.serial or ""), serial_key(record.serial or "")
    if not query_key or _fold(query_key) != _fold(record_key):
        return None
    query_make, record_make = makes.canonical(query.make), makes.canonical(record.make)
    if query_make is not None and record_make is not None and query_make != record_make:
        return None  # two makes: another firearm whose serial happens to read alike
    score = SCORE_EXACT if query_key == record_key else SCORE_PROBABLE
    # Appended in MATCHED_ON_ORDER. Model and caliber are spelled too variously ("9 mm", "9x19mm Parabellum") to
    # exclude a match when they differ; they are only named when they agree.
    agreed = ["serial-number"]
    if _agree(query_make, record_make):
        agreed.append("make")
    if _agree(plain(query.model), plain(record.model)):
        agreed.append("model")
    if _agree(plain(query.caliber), plain(record.caliber)):
        agreed.append("caliber")
    if _agree(_country(query.country), _country(record.country)):
        agreed.append("country-of-manufacture")
    return Match(score, tuple(agreed))
