"""Routing (ISACS 05.31, 8.1) and the administrators' routing table."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.errors import ConfigurationError, ErrorCode, Refused
from gateway.core.model import Confidentiality, ExportRecord, Header, ImportMark, Rule, TraceRequestInfo
from gateway.routing.rules import explain, route
from gateway.routing.table import load_table, parse_table

TABLE = parse_table(
    {
        "states": {
            "ZA": {"status": "active"},
            "MZ": {"status": "active"},
            "BR": {"status": "active"},
            "AT": {"status": "active"},
            "KE": {"status": "active"},
            "MW": {"status": "suspended"},
            "LS": {"status": "active", "delegate": "ZA"},
        }
    },
    where="test",
)


def request(
    sender: str = "ZA",
    *,
    made_in: str | None = "AT",
    marks: tuple[ImportMark, ...] = (),
    exports: tuple[ExportRecord, ...] = (),
) -> TraceRequestInfo:
    """A request with just what routing reads."""
    header = Header("3f0c6a52-8b1e-4d55-9a57-0d4f7e1b2c01", datetime(2026, 11, 2, tzinfo=UTC), sender, None)
    return TraceRequestInfo(header, "Firearm", made_in, marks, exports, (), False, Confidentiality(True), None)


def exp(importing: str, when: str, exporting: str = "ZA") -> ExportRecord:
    """An export record."""
    return ExportRecord(exporting, importing, date.fromisoformat(when))


@pytest.mark.parametrize(
    ("case", "expected_party", "expected_rule"),
    [
        (
            request(exports=(exp("MZ", "2019-06-14"),), marks=(ImportMark("BR", 2014),)),
            "MZ",
            Rule.EXPORT_RECORD,
        ),
        (request(exports=(exp("BR", "2021-01-01"), exp("MZ", "2019-06-14"))), "BR", Rule.EXPORT_RECORD),
        (request(exports=(exp("MZ", "2020-01-01"), exp("BR", "2020-01-01"))), "BR", Rule.EXPORT_RECORD),
        (request(marks=(ImportMark("BR", 2014),)), "BR", Rule.IMPORT_MARK),
        (request(marks=(ImportMark("BR", 2019), ImportMark("MZ", 2014))), "BR", Rule.IMPORT_MARK),
        (request(marks=(ImportMark("BR", None), ImportMark("MZ", None))), "MZ", Rule.IMPORT_MARK),
        (request(marks=(ImportMark("KE", 2010), ImportMark("MZ", None))), "KE", Rule.IMPORT_MARK),
        (request(), "AT", Rule.MANUFACTURE),
        (request(sender="KE", made_in="LS"), "ZA", Rule.MANUFACTURE),
    ],
)
def test_route_follows_the_most_recent_jurisdiction(
    case: TraceRequestInfo, expected_party: str, expected_rule: Rule
) -> None:
    """Export record before import mark before manufacture; the most recent of each wins."""
    chosen = route(case, TABLE)
    assert (chosen.party, chosen.rule) == (expected_party, expected_rule)
    assert chosen.table_version == TABLE.version


def test_delegated_state_is_received_by_its_delegate() -> None:
    """A request routed to a delegating state goes to the delegate, which receives it on that state's behalf."""
    chosen = route(request(sender="KE", made_in="LS"), TABLE)
    assert chosen.on_behalf_of == "LS"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        (request(sender="MZ", exports=(exp("MZ", "2019-06-14"),)), ErrorCode.DESTINATION_IS_SENDER),
        (request(sender="ZA", made_in="LS"), ErrorCode.DESTINATION_IS_SENDER),
        (request(exports=(exp("FR", "2019-06-14"),)), ErrorCode.NO_ROUTE),
        (request(made_in=None), ErrorCode.NO_ROUTE),
        (request(marks=(ImportMark("MW", 2020),)), ErrorCode.DESTINATION_NOT_CONNECTED),
    ],
)
def test_unroutable_requests_are_refused_with_their_code(case: TraceRequestInfo, code: ErrorCode) -> None:
    """Destination equal to the sender, absent from the table or suspended: each its own code."""
    with pytest.raises(Refused) as caught:
        route(case, TABLE)
    assert caught.value.code is code
    assert caught.value.detail


def test_explain_names_the_rule_and_the_reason() -> None:
    """`routes explain` says where a request would go and why."""
    text = explain(request(exports=(exp("MZ", "2019-06-14"),)), TABLE)
    assert "to MZ by rule export-record" in text and "2019-06-14" in text
    assert explain(request(marks=(ImportMark("MW", 2020),)), TABLE).startswith("refused DESTINATION_NOT_CONNECTED")


@given(st.lists(st.tuples(st.sampled_from(["MZ", "BR", "AT", "KE"]), st.dates()), min_size=1, max_size=6))
def test_export_record_rule_always_picks_the_latest_date(records: list[tuple[str, date]]) -> None:
    """Whatever the export records, the destination is the importing state of one with the latest date."""
    exports = tuple(ExportRecord("ZA", state, when) for state, when in records)
    chosen = route(request(exports=exports), TABLE)
    latest = max(when for _, when in records)
    assert chosen.party in {state for state, when in records if when == latest}


def test_version_ignores_comments_and_layout(tmp_path: Path) -> None:
    """Two files with the same meaning have the same version; a change of status changes it."""
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    a.write_text('[states.ZA]\nstatus = "active"\n[states.MZ]\nstatus = "active"\n')
    b.write_text('# comment\n[states.MZ]\nstatus="active"\n\n[states.ZA]\nstatus = "active"\n')
    assert load_table(a).version == load_table(b).version
    b.write_text('[states.MZ]\nstatus="suspended"\n[states.ZA]\nstatus = "active"\n')
    assert load_table(a).version != load_table(b).version


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[states.XX]\nstatus = "active"\n', "not an ISO 3166-1 alpha-2 code"),
        ('[states.za]\nstatus = "active"\n', "not an ISO 3166-1 alpha-2 code"),
        ('[states.ZA]\nstatus = "on"\n', "status must be"),
        ('[states.ZA]\nstatus = "active"\ncolour = "red"\n', "unknown keys: colour"),
        ('[states.ZA]\ndelegate = "MZ"\n', "not in the table"),
        ('[states.ZA]\n[states.MZ]\nstatus = "suspended"\n[states.LS]\ndelegate = "MZ"\n', "must be active"),
        ("states = 1\n", "at least one"),
        ("[states.ZA\n", "not valid TOML"),
    ],
)
def test_bad_tables_are_refused_with_the_fault(tmp_path: Path, content: str, message: str) -> None:
    """An administrator's mistake names the file and the fault."""
    path = tmp_path / "routing.toml"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=message) as caught:
        load_table(path)
    assert str(path) in str(caught.value)


def test_norway_is_a_state_not_false(tmp_path: Path) -> None:
    """TOML keeps NO as Norway's code (the reason the table is not YAML)."""
    path = tmp_path / "routing.toml"
    path.write_text('[states.NO]\nstatus = "active"\n')
    assert load_table(path).entry("NO") is not None


def test_active_states_need_trust_material(tmp_path: Path) -> None:
    """An active state without certificates under the trust directory is a configuration error."""
    path = tmp_path / "routing.toml"
    path.write_text('[states.ZA]\n[states.MZ]\n[states.MW]\nstatus = "suspended"\n')
    with pytest.raises(ConfigurationError, match="without trust material: MZ"):
        load_table(path, trusted=frozenset({"ZA"}))


def test_shipped_table_is_valid() -> None:
    """The routing table in config/ loads."""
    table = load_table(Path(__file__).parents[2] / "config" / "routing.toml")
    assert table.entry("MW") is not None and not table.entry("MW").active  # type: ignore[union-attr]
