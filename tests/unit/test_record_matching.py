"""The records register's matching rules (contract 4.3): normalised serials, look-alikes, makes and `MatchedOn`."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.core.errors import ConfigurationError
from gateway.records.matching import (
    MATCHED_ON_ORDER,
    SCORE_EXACT,
    SCORE_PROBABLE,
    Described,
    Makes,
    Match,
    compare,
    plain,
    serial_key,
    shape_key,
)

MAKES_TOML = Path(__file__).resolve().parents[2] / "config" / "makes.toml"
SHIPPED = Makes.load(MAKES_TOML)

# Characters of one look-alike group: any member may be misread as any other.
LOOK_ALIKE_GROUPS = ("O0", "I1L", "S5", "B8", "Z2")
SUBSTITUTES = {c: group.replace(c, "") for group in LOOK_ALIKE_GROUPS for c in group}
# What a clerk writes between a serial's characters.
SEPARATORS = (" ", "-", ".", "/", "\\", "\u00a0", "\u2013", "\u2212", "\t")
SERIAL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

serials = st.text(alphabet=SERIAL_ALPHABET, min_size=1, max_size=20)


def match(query: str | None, record: str | None, makes: Makes = SHIPPED) -> Match | None:
    """`compare` of two firearms described by their serials only."""
    return compare(Described(query), Described(record), makes)


# ------------------------------------------------------------------------------------------------ serial examples


@pytest.mark.parametrize(
    ("query", "record", "score"),
    [
        ("BER-D12345Z", "ber d12345z", SCORE_EXACT),
        ("BER-D12345Z", "BER.D12345Z", SCORE_EXACT),
        ("BER-D12345Z", "ber/d12345/z", SCORE_EXACT),
        ("BER-D12345Z", "BER\\D12345Z", SCORE_EXACT),
        ("BER-D12345Z", "  BER\u2013D12345Z\u00a0", SCORE_EXACT),
        ("BER-D12345Z", "BER\u200bD12345Z", SCORE_EXACT),
        ("BER-D12345Z", "８ＥＲ－Ｄ１２３４５Ｚ", SCORE_PROBABLE),
        ("BER-D12345Z", "8ER-D12345Z", SCORE_PROBABLE),
        ("BER-D12345Z", "8ERD1Z345Z", SCORE_PROBABLE),
        ("BER-D12345Z", "BER-D12345-2", SCORE_PROBABLE),
        ("A0B1", "aobi", SCORE_PROBABLE),
        ("A0B1", "AOBL", SCORE_PROBABLE),
        ("BER-D12345Z", "BER-D12346Z", None),
        ("BER-D12345Z", "BER-D12345", None),
        ("BER-D12345Z", "BER-D12345ZZ", None),
    ],
)
def test_serial_examples(query: str, record: str, score: str | None) -> None:
    """Serials written differently match exact; look-alike characters only probable; other serials not at all."""
    found = match(query, record)
    assert (found.score if found is not None else None) == score
    assert match(record, query) == found


@pytest.mark.parametrize("serial", ["", "   ", "-", "./\\-", " - . / ", "\u00a0\u2013", None])
def test_serial_with_nothing_to_compare_never_matches(serial: str | None) -> None:
    """A missing, empty or punctuation-only serial matches nothing, not even another such serial."""
    assert match(serial, serial) is None
    assert match(serial, "") is None
    assert match("A123", serial) is None


def test_serial_key_upper_cases_without_crashing_on_special_cases() -> None:
    """Characters whose upper case is longer ('ß', 'ẞ') or a compatibility form ('ﬁ', full width) fold predictably."""
    assert serial_key("straße-1") == "STRASSE1"
    assert serial_key("STRAẞE-1") == serial_key("strasse 1")
    assert serial_key("ﬁ 12") == "FI12"
    assert serial_key("ＡＢ－１２") == "AB12"
    assert shape_key("BER-D12345Z") == shape_key("8ERD1Z345Z") == "8ERD123452"


# ------------------------------------------------------------------------------------------------ make examples


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("GLOCK", "Glock Ges.m.b.H."),
        ("GLOCK", "Glock GmbH"),
        ("Glock Ges.m.b.H.", "Glock GmbH"),
        ("glock gmbh", "GLOCK-GMBH"),
        ("S&W", "Smith and Wesson"),
        ("HK", "Heckler und Koch"),
        ("Sig-Sauer", "SIG"),
        ("CZ", "Česká zbrojovka"),
        ("Ceska Zbrojovka", "Česká zbrojovka"),
        ("Izhmash", "Kalashnikov Concern"),
        ("Sturm, Ruger & Co.", "RUGER"),
    ],
)
def test_spellings_of_one_make_match(left: str, right: str) -> None:
    """Spellings of one make in the shipped alias list match, and `MatchedOn` names the make."""
    found = compare(Described("G-123", make=left), Described("g123", make=right), SHIPPED)
    assert found == Match(SCORE_EXACT, ("serial-number", "make"))


def test_alias_spellings_need_the_alias_list() -> None:
    """Without the alias list, a legal name and a short name are different makes and the serial does not match."""
    assert compare(Described("G123", make="GLOCK"), Described("G123", make="Glock GmbH"), Makes.none()) is None
    assert compare(Described("G123", make="GLOCK"), Described("G123", make="glock"), Makes.none()) is not None


@pytest.mark.parametrize(("left", "right"), [("Glock", "Beretta"), ("SIG", "Smith & Wesson"), ("Acme", "Glock")])
def test_a_different_make_never_matches(left: str, right: str) -> None:
    """An equal serial with a make that disagrees is another firearm: no match, exact or probable."""
    assert compare(Described("A123", make=left), Described("A123", make=right), SHIPPED) is None
    assert compare(Described("A123", make=left), Described("AI23", make=right), SHIPPED) is None


@pytest.mark.parametrize(
    ("query", "record"),
    [
        (Described("A123", make="Glock"), Described("A123")),
        (Described("A123"), Described("A123", make="Glock")),
        (Described("A123", make=" - "), Described("A123", make="Glock")),
        (Described("A123"), Described("A123")),
    ],
)
def test_a_missing_make_still_matches(query: Described, record: Described) -> None:
    """A make missing on either side does not prevent a match, and is not named in `MatchedOn`."""
    assert compare(query, record, SHIPPED) == Match(SCORE_EXACT, ("serial-number",))


# ------------------------------------------------------------------------------------------------ MatchedOn


def test_matched_on_names_everything_that_agreed_in_the_contract_order() -> None:
    """Every agreeing item is listed, in the contract's order, whatever their case, spaces and punctuation."""
    query = Described("BER-D12345Z", make="GLOCK", model="G 17", caliber="9x19mm", country="at")
    record = Described("ber d12345z", make="Glock GmbH", model="g17", caliber="9 x 19 mm", country="AT")
    found = compare(query, record, SHIPPED)
    assert found == Match(SCORE_EXACT, MATCHED_ON_ORDER)


@pytest.mark.parametrize(
    ("record", "matched_on"),
    [
        (Described("A123", model="G19", caliber="9 mm", country="US"), ("serial-number",)),
        (Described("A123", model="G17", caliber="9 mm", country="US"), ("serial-number", "model")),
        (Described("A123", model="G19", caliber="9x19mm", country="US"), ("serial-number", "caliber")),
        (Described("A123", model="G19", caliber="9 mm", country="AT"), ("serial-number", "country-of-manufacture")),
        (Described("A123", make="Glock", model="G17"), ("serial-number", "make", "model")),
        (Described("A123", make="Glock", country="AT"), ("serial-number", "make", "country-of-manufacture")),
    ],
)
def test_model_caliber_and_country_never_exclude_a_match(record: Described, matched_on: tuple[str, ...]) -> None:
    """Model, caliber and country that disagree still match; only those that agree are named."""
    query = Described("A123", make="Glock", model="G-17", caliber="9X19MM", country="AT")
    assert compare(query, record, SHIPPED) == Match(SCORE_EXACT, matched_on)


def test_probable_match_lists_what_agreed_too() -> None:
    """A look-alike match is probable and still names the make that agreed."""
    found = compare(Described("B0Z", make="Beretta"), Described("80Z", make="Pietro Beretta"), SHIPPED)
    assert found == Match(SCORE_PROBABLE, ("serial-number", "make"))


@pytest.mark.parametrize(("text", "expected"), [("9x19mm Parabellum", "9x19mmparabellum"), (" - ", None), (None, None)])
def test_plain_ignores_case_spaces_and_punctuation(text: str | None, expected: str | None) -> None:
    """Makes, models and calibers compare without case, spaces or punctuation; nothing left is not given."""
    assert plain(text) == expected


# ------------------------------------------------------------------------------------------------ properties


@st.composite
def clerk_writings(draw: st.DrawFn, serial: str) -> str:
    """`serial` as a clerk might write it: any case per character, separators anywhere, whitespace around."""
    parts = [draw(st.sampled_from((c.upper(), c.lower()))) for c in serial]
    written = "".join(part + draw(st.text(alphabet=SEPARATORS, max_size=2)) for part in parts)
    before = draw(st.text(alphabet=" \t\u00a0\n", max_size=3))
    after = draw(st.text(alphabet=" \t\u00a0\n", max_size=3))
    inside = draw(st.text(alphabet=SEPARATORS, max_size=2))
    return before + inside + written + after


@given(st.data(), serials)
def test_any_clerk_writing_of_a_serial_matches_exact(data: st.DataObject, serial: str) -> None:
    """However a clerk writes a serial (case, spaces, hyphens, dots, slashes), it matches the serial exactly."""
    written = data.draw(clerk_writings(serial))
    assert match(serial, written) == Match(SCORE_EXACT, ("serial-number",))


@st.composite
def look_alike_pairs(draw: st.DrawFn) -> tuple[str, str]:
    """A serial with at least one look-alike character, and the serial with some of them swapped for another."""
    prefix = draw(st.text(alphabet=SERIAL_ALPHABET, max_size=8))
    suffix = draw(st.text(alphabet=SERIAL_ALPHABET, max_size=8))
    pivot = draw(st.sampled_from(sorted(SUBSTITUTES)))
    serial = prefix + pivot + suffix
    swapped = [draw(st.sampled_from(SUBSTITUTES[c])) if c in SUBSTITUTES and draw(st.booleans()) else c for c in serial]
    swapped[len(prefix)] = draw(st.sampled_from(SUBSTITUTES[pivot]))  # at least the pivot is swapped
    return serial, "".join(swapped)


@given(look_alike_pairs(), st.booleans())
def test_a_look_alike_character_makes_a_match_probable_never_exact(pair: tuple[str, str], lower: bool) -> None:
    """A serial that differs by look-alike characters (either way, any case) is a probable match, never exact."""
    serial, swapped = pair
    written = swapped.lower() if lower else swapped
    assert match(serial, written) == Match(SCORE_PROBABLE, ("serial-number",))
    assert match(written, serial) == Match(SCORE_PROBABLE, ("serial-number",))


def _shipped_spellings() -> list[str]:
    """Every make and spelling of the shipped alias list."""
    table = tomllib.loads(MAKES_TOML.read_text(encoding="utf-8"))["makes"]
    return sorted(set(table) | {spelling for spellings in table.values() for spelling in spellings})


makes_written = st.one_of(st.sampled_from(_shipped_spellings()), st.text(min_size=1, max_size=12))


@given(makes_written, makes_written, serials, serials)
def test_different_makes_never_match_whatever_the_serials(left: str, right: str, serial: str, other: str) -> None:
    """Two makes that are not one make (nor aliases of one) never match, however much their serials agree."""
    assume(SHIPPED.canonical(left) is not None and SHIPPED.canonical(right) is not None)
    assume(SHIPPED.canonical(left) != SHIPPED.canonical(right))
    for record_serial in (serial, serial.lower(), shape_key(serial), other):
        assert compare(Described(serial, make=left), Described(record_serial, make=right), SHIPPED) is None


@given(st.text())
def test_keys_are_idempotent(text: str) -> None:
    """The key of a key is the key, so a stored key and a freshly computed one always agree."""
    assert serial_key(serial_key(text)) == serial_key(text)
    assert shape_key(shape_key(text)) == shape_key(text)
    assert shape_key(serial_key(text)) == shape_key(text)


# ------------------------------------------------------------------------------------------------ the alias list


def test_shipped_alias_list_loads_with_a_stable_version() -> None:
    """The shipped config/makes.toml is valid and its version is a SHA-256 that does not depend on order."""
    assert len(SHIPPED.version) == 64 and int(SHIPPED.version, 16) >= 0
    assert Makes.load(MAKES_TOML) == SHIPPED
    forward = Makes({"Glock": ["Glock GmbH", "Glock Ges.m.b.H."], "Walther": ["Carl Walther"]})
    backward = Makes({"Walther": ["Carl Walther"], "Glock": ["Glock Ges.m.b.H.", "Glock GmbH"]})
    assert forward.version == backward.version
    assert forward.version != Makes({"Glock": ["Glock GmbH"]}).version != Makes.none().version


def test_a_make_not_listed_compares_as_written() -> None:
    """A make the list does not know is compared after case, spaces and punctuation, and is its own make."""
    assert SHIPPED.canonical("Acme Arms Ltd.") == "acmearmsltd"
    assert SHIPPED.canonical("  ") is None and SHIPPED.canonical(None) is None


@pytest.mark.parametrize(
    ("data", "culprits"),
    [
        ({"makes": {"Glock": "Glock GmbH"}}, ("Glock", "list")),
        ({"makes": {"Glock": ["Glock GmbH", 3]}}, ("Glock", "3")),
        ({"makes": {"Glock": ["Glock GmbH", None]}}, ("Glock", "None")),
        ({"makes": {"Glock": ["GmbH"], "Walther": ["gmbh"]}}, ("gmbh", "Glock", "Walther")),
        ({"makes": {"Glock": ["Walther"], "Walther": []}}, ("Glock", "Walther")),
        ({"makes": {"Glock": ["--"]}}, ("Glock", "--")),
        ({"makes": {"...": []}}, ("...",)),
        ({}, ("[makes]",)),
        ({"makes": ["Glock"]}, ("[makes]",)),
        ({"makes": {}, "aliases": {}}, ("aliases",)),
    ],
)
def test_a_faulty_alias_list_is_refused_naming_the_culprit(data: dict[str, object], culprits: tuple[str, ...]) -> None:
    """A malformed alias list is refused with a message naming the file and what is wrong in it."""
    with pytest.raises(ConfigurationError) as caught:
        Makes.parse(data, where="makes-test.toml")
    message = str(caught.value)
    assert message.startswith("makes-test.toml: ")
    for culprit in culprits:
        assert culprit in message


def test_load_refuses_a_missing_or_broken_file(tmp_path: Path) -> None:
    """A missing file or one that is not TOML is a configuration error naming the file, not a crash."""
    with pytest.raises(ConfigurationError, match="not found"):
        Makes.load(tmp_path / "absent.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[makes\nGlock = [", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid TOML") as caught:
        Makes.load(broken)
    assert str(broken) in str(caught.value)
