"""`tracegate audit replay`: a realistic recorded run re-decided with zero divergence; edits found; source untouched."""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import delete, select, update

from gateway.audit.replay import Divergence, replay
from gateway.core import chain as rules
from gateway.core.ports import Inbound
from gateway.dev import samples
from gateway.dev.pki import DevPki
from gateway.pipeline.checks import NO_USER_ID
from gateway.store import Store, audit, inbound, metadata
from tests import forge

from .conftest import Switch

ACTIVE = ("AT", "BR", "KE", "MZ", "ZA")
Made = etree._Element | bytes


@dataclass
class Step:
    """One message of the run: who sends it, how it is made at the send time, and what the switch must decide."""

    sender: str
    make: Callable[[datetime], Made]
    expect: str = "accepted"  # or "duplicate", or the refusal code
    routing_key: str | None = None


def _uuid(rng: random.Random) -> str:
    """A reproducible UUID4."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _route(rng: random.Random, index: int, requester: str) -> tuple[str, dict[str, Any]]:
    """(party, request options) for one of the three rules in turn; now and then a delegated destination."""
    party = rng.choice([s for s in ACTIVE if s != requester])
    if index % 3 == 0:
        if requester != "ZA" and rng.random() < 0.2:
            return "ZA", {"exports": [(requester, "LS", "2020-01-09")]}  # LS delegates to ZA
        return party, {"exports": [("AT", party, "2018-03-01"), (requester, party, "2019-06-14")]}
    if index % 3 == 1:
        return party, {"import_marks": [(party, 2014)]}
    return party, {"made_in": party}


class Trace:
    """The steps of one trace's story, each made at its own send time."""

    def __init__(self, rng: random.Random, index: int) -> None:
        self.rng = rng
        self.requester = rng.choice(ACTIVE)
        self.party, self.options = _route(rng, index, self.requester)
        self.trace_id = _uuid(rng)
        self.steps: list[Step] = [Step(self.requester, self._request)]

    def _request(self, at: datetime) -> Made:
        """The first request (its MessageId is the TraceId)."""
        return samples.trace_request(self.requester, message_id=self.trace_id, created_at=at, **self.options)

    def say(self, who: str, kind: str, expect: str = "accepted", **fields: str | list[str] | None) -> None:
        """A message within the trace."""
        self.steps.append(
            Step(who, lambda at: samples.reply(kind, who, self.trace_id, created_at=at, **fields), expect)
        )

    def respond(self, expect: str = "accepted") -> None:
        """A response, now and then partial and restricted."""
        partial, codes = self.rng.random() < 0.4, self.rng.random() < 0.5
        self.steps.append(
            Step(
                self.party,
                lambda at: samples.trace_response(
                    self.party,
                    self.trace_id,
                    created_at=at,
                    partial=partial,
                    partial_reason="ongoing-investigation",
                    restrictions=["competent-authorities-only", "no-onward-release-without-consent"] if codes else [],
                    restriction_text="Prosecutor only." if codes else None,
                ),
                expect,
            )
        )

    def resubmit(self) -> None:
        """The requester resubmits the returned request, completed."""
        self.steps.append(
            Step(
                self.requester,
                lambda at: samples.trace_request(
                    self.requester, trace_id=self.trace_id, resubmits=self.trace_id, created_at=at, **self.options
                ),
            )
        )


def _answered(t: Trace) -> None:
    """Acknowledged, perhaps delayed and discussed, then answered."""
    t.say(t.party, "Acknowledgement")
    if t.rng.random() < 0.3:
        t.say(t.requester, "Acknowledgement", "NOT_AUTHORIZED")  # only the requested state acknowledges
    if t.rng.random() < 0.4:
        t.say(t.party, "DelayNotice", "REASON_REQUIRED", Text="Later.", ExpectedBy="2027-01-01")
        t.say(t.party, "DelayNotice", Reason="ongoing-investigation", Text="Records held.", ExpectedBy="2027-02-15")
    if t.rng.random() < 0.4:
        t.say(t.requester, "Comment", Text="Any partial answer helps.")
    t.respond()
    if t.rng.random() < 0.3:
        t.say(t.requester, "Comment", Text="Thank you.")


def _returned(t: Trace) -> None:
    """Returned for completion, resubmitted, then answered."""
    if t.rng.random() < 0.5:
        t.say(t.party, "Acknowledgement")
    t.say(t.party, "ReturnForCompletion", MissingItem=["caliber"], Note="Please measure it.")
    t.resubmit()
    t.say(t.party, "Acknowledgement")
    t.respond()


def _refused(t: Trace) -> None:
    """Refused with its reason; a comment still passes, a late response does not."""
    t.say(t.party, "Acknowledgement")
    t.say(t.party, "Refusal", Reason="national-security", Text="Not releasable.")
    t.say(t.requester, "Comment", Text="Could you say more?")
    t.respond("INVALID_STATE")


def _withdrawn(t: Trace) -> None:
    """Withdrawn by the requester; a late acknowledgement is refused."""
    t.say(t.party, "Acknowledgement")
    t.say(t.requester, "Withdrawal", Text="Case closed.")
    t.say(t.party, "Acknowledgement", "INVALID_STATE")
    t.say(t.party, "Comment", "INVALID_STATE", Text="Noted.")


def _left_open(t: Trace) -> None:
    """Still open: perhaps acknowledged; an outsider's comment and a status query."""
    if t.rng.random() < 0.5:
        t.say(t.party, "Acknowledgement")
    outsider = next(s for s in ACTIVE if s not in (t.requester, t.party))
    t.say(outsider, "Comment", "UNKNOWN_TRACE", Text="Me too.")
    t.steps.append(
        Step(t.party, lambda at: samples.message("StatusQuery", t.party, trace_id=t.trace_id, created_at=at))
    )


PATHS = (_answered, _answered, _returned, _refused, _withdrawn, _left_open)


def oddities(switch: Switch, rng: random.Random) -> list[list[Step]]:
    """Single messages refused for what they are (and a repeat, a status query, a justified gap)."""
    request = samples.trace_request
    to_mz = {"exports": [("ZA", "MZ", "2019-06-14")]}
    repeated: dict[str, bytes] = {}

    def once(at: datetime) -> bytes:
        return repeated.setdefault("body", switch.sign("ZA", request("ZA", created_at=at, **to_mz)))  # type: ignore[arg-type]

    cases = [
        Step("KE", lambda at: request("KE", omit=("Caliber",), created_at=at, **to_mz), "INCOMPLETE"),  # type: ignore[arg-type]
        Step("KE", lambda at: request("KE", omit=("Caliber",), justification="Worn.", created_at=at, **to_mz)),  # type: ignore[arg-type]
        Step("ZA", lambda at: request("ZA", created_at=at, **to_mz), "SENDER_MISMATCH", routing_key="MZ"),  # type: ignore[arg-type]
        Step("MZ", lambda at: samples.reply("Acknowledgement", "MZ", _uuid(rng), created_at=at), "UNKNOWN_TRACE"),
        Step(
            "BR", lambda at: samples.message("StatusQuery", "BR", trace_id=_uuid(rng), created_at=at), "UNKNOWN_TRACE"
        ),
        Step("AT", lambda at: samples.message("StatusQuery", "AT", created_at=at)),
        Step(
            "ZA",
            lambda at: switch.sign("ZA", request("ZA", created_at=at, **to_mz)).replace(b"BXK291", b"BXK292"),  # type: ignore[arg-type]
            "SIGNATURE_INVALID",
        ),
        Step("ZA", lambda at: f"<t:TraceRequest xmlns:t='urn:itrace:1'><t:Header>{at}".encode(), "MALFORMED_XML"),
        Step("ZA", lambda at: request("ZA", created_at=at - timedelta(days=4), **to_mz), "STALE_MESSAGE"),  # type: ignore[arg-type]
        Step(
            "KE",
            lambda at: request("KE", exports=[("KE", "MW", "2020-02-02")], created_at=at),
            "DESTINATION_NOT_CONNECTED",
        ),
        Step("KE", lambda at: request("KE", exports=[("KE", "FR", "2020-02-02")], created_at=at), "NO_ROUTE"),
        Step(
            "KE", lambda at: request("KE", exports=[("MZ", "KE", "2020-02-02")], created_at=at), "DESTINATION_IS_SENDER"
        ),
        Step(
            "ZA",
            lambda at: forge.stranger("ZA", at).sign(request("ZA", created_at=at, **to_mz)),  # type: ignore[arg-type]
            "CERTIFICATE_UNTRUSTED",
        ),
    ]
    repeat = [Step("ZA", once), Step("ZA", once, "duplicate")]
    return [[case] for case in cases for _ in range(2)] + [repeat]


async def play(switch: Switch, traces: int, seed: int = 5) -> int:
    """A recorded run: `traces` interleaved stories and the oddities, each decision checked; returns messages sent."""
    rng = random.Random(seed)
    stories = []
    for index in range(traces):
        story = Trace(rng, index)
        rng.choice(PATHS)(story)
        stories.append(story.steps)
    stories += oddities(switch, rng)
    sent = 0
    while stories:
        pick = rng.randrange(len(stories))
        step = stories[pick].pop(0)
        if not stories[pick]:
            stories.pop(pick)
        switch.clock.advance(timedelta(minutes=rng.randint(1, 40)))
        outcome = await switch.send(step.sender, step.make(switch.clock.now), routing_key=step.routing_key)
        repeat = outcome.outcome == "duplicate"
        assert (step.expect == "duplicate") == repeat and step.expect in (outcome.outcome, outcome.code), outcome
        sent += 1
        if sent % 50 == 0:
            await switch.tick()  # deadline notices fire between messages, as they would
    return sent


async def message_ins(store: Store) -> list[tuple[int, dict[str, Any]]]:
    """(seq, data) of every `message-in` record."""
    rows = await store.fetch(
        select(audit.c.seq, audit.c.data).where(audit.c.type == "message-in").order_by(audit.c.seq)
    )
    return [(row.seq, json.loads(row.data)) for row in rows]


async def test_a_realistic_run_replays_with_zero_divergence(switch: Switch) -> None:
    """Hundreds of messages over every rule, path and refusal, with deadlines firing: replayed, nothing differs."""
    sent = await play(switch, traces=80)
    recorded = await message_ins(switch.store)
    assert sent >= 300 and len(recorded) == sent - 1  # the repeat is answered again, not recorded again
    seen = {(d["outcome"], d["code"] or d["rule"]) for _, d in recorded}
    assert {("accepted", r) for r in ("export-record", "import-mark", "manufacture", "reply")} <= seen
    assert len({code for outcome, code in seen if outcome == "refused"}) >= 13
    calls: list[tuple[int, int]] = []
    report = await replay(switch.store, switch.settings, progress=lambda done, total: calls.append((done, total)))
    assert report.divergences == ()
    assert report.replayed == len(recorded) and calls[-1] == (len(recorded), len(recorded))


async def test_a_message_without_user_id_replays_as_refused_and_one_with_it_as_accepted(switch: Switch) -> None:
    """The stored sender is the broker user's state: replay hands it back as the user_id, except to the message
    that was refused for having none, which is replayed without one; neither diverges."""
    body = switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    refused = await switch.pipeline.handle(Inbound(body, routing_key="ZA"))
    assert (refused.code, refused.detail) == ("SENDER_MISMATCH", NO_USER_ID)
    accepted = await switch.send("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    assert accepted.outcome == "accepted"
    report = await replay(switch.store, switch.settings)
    assert (report.replayed, report.divergences) == (2, ())


async def _edit(store: Store, seq: int, inbound_changes: dict[str, Any], **data_changes: Any) -> None:
    """Alter a recorded decision: the audit record's data (and, when given, the stored row)."""
    [row] = await store.fetch(select(audit.c.data).where(audit.c.seq == seq))
    data = {**json.loads(row.data), **data_changes}
    async with store.engine.begin() as conn:
        await conn.execute(update(audit).where(audit.c.seq == seq).values(data=rules.canonical(data)))
        if inbound_changes:
            await conn.execute(update(inbound).where(inbound.c.id == data["inbound_id"]).values(**inbound_changes))


async def test_altered_decisions_are_reported_at_their_records(switch: Switch) -> None:
    """Edited outcome, rule or trace status, an edited body, a deleted message: each reported once, at its record."""
    await play(switch, traces=24, seed=11)
    recorded = await message_ins(switch.store)

    def first(test: Callable[[dict[str, Any]], bool]) -> tuple[int, int]:
        return next((seq, data["inbound_id"]) for seq, data in recorded if test(data))

    incomplete = first(lambda d: d["code"] == "INCOMPLETE")
    routed = first(lambda d: d["rule"] == "export-record")
    acknowledged = first(lambda d: d["kind"] == "Acknowledgement" and d["outcome"] == "accepted")
    unknown = first(lambda d: d["code"] == "UNKNOWN_TRACE")
    malformed = first(lambda d: d["code"] == "MALFORMED_XML")
    await _edit(switch.store, incomplete[0], {"outcome": "accepted", "code": None}, outcome="accepted", code=None)
    await _edit(switch.store, routed[0], {"rule": "manufacture"}, rule="manufacture")
    await _edit(switch.store, acknowledged[0] + 1, {}, status="responded")  # the trace record that follows it
    async with switch.store.engine.begin() as conn:
        await conn.execute(update(inbound).where(inbound.c.id == unknown[1]).values(body=b"<x/>"))
        await conn.execute(delete(inbound).where(inbound.c.id == malformed[1]))
    report = await replay(switch.store, switch.settings)
    expected = [
        Divergence(*incomplete, "recorded accepted, replay refused INCOMPLETE"),
        Divergence(*routed, "rule: recorded manufacture, replay export-record"),
        Divergence(*acknowledged, "trace status after: recorded responded, replay acknowledged"),
        Divergence(*unknown, "the stored message no longer matches the SHA-256 recorded for it; not replayed"),
        Divergence(*malformed, "the stored message is missing"),
    ]
    assert report.divergences == tuple(sorted(expected, key=lambda d: d.seq))
    assert report.replayed == len(recorded)


async def snapshot(store: Store) -> dict[str, tuple[int, str]]:
    """Every table's row count and a digest of its rows in key order."""
    out = {}
    for table in metadata.sorted_tables:
        rows = await store.fetch(select(table).order_by(*table.primary_key.columns))
        out[table.name] = (len(rows), hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest())
    return out


def _files(database: Path) -> dict[str, str]:
    """The SQLite database's files and their hashes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in database.parent.glob(database.name + "*")}


async def test_replay_changes_nothing_in_the_source(switch: Switch) -> None:
    """Every table's rows and the chain's head are the same after a replay; on SQLite, the very bytes of the file."""
    await play(switch, traces=15, seed=3)
    before = await snapshot(switch.store)
    assert before["audit_head"][0] == 1
    await replay(switch.store, switch.settings)
    assert await snapshot(switch.store) == before
    if switch.store.is_sqlite:
        await switch.store.close()
        database = Path(switch.store.engine.url.database or "")
        files = _files(database)
        source = Store(switch.settings.database_url)
        try:
            assert (await replay(source, switch.settings)).divergences == ()
        finally:
            await source.close()
        assert _files(database) == files


def tracegate(switch: Switch, pki: DevPki, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command against the switch's database and PKI."""
    (tmp_path / "none.toml").write_text("[tracegate]\n")
    env = dict(os.environ)
    env.update(
        {
            "TRACEGATE_CONFIG": str(tmp_path / "none.toml"),
            "TRACEGATE_DATABASE_URL": switch.settings.database_url,
            "TRACEGATE_DATABASE_SCHEMA": switch.settings.database_schema,
            "TRACEGATE_TRUST_DIR": str(pki.trust_dir),
            "TRACEGATE_ROUTING_TABLE": str(switch.settings.routing_table),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


async def test_command_prints_divergences_and_exits_1(switch: Switch, pki: DevPki, tmp_path: Path) -> None:
    """`tracegate audit replay`: a summary and exit 0 on a faithful record; the divergence and exit 1 once edited."""
    await play(switch, traces=10, seed=7)
    count = len(await message_ins(switch.store))
    clean = tracegate(switch, pki, tmp_path, "audit", "replay")
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout == f"replayed {count} messages: 0 divergences\n"
    seq, data = next((s, d) for s, d in await message_ins(switch.store) if d["code"] == "MALFORMED_XML")
    await _edit(switch.store, seq, {}, code="SCHEMA_INVALID")
    edited = tracegate(switch, pki, tmp_path, "audit", "replay")
    assert edited.returncode == 1, edited.stderr
    assert edited.stdout.splitlines() == [
        f"record {seq} (inbound {data['inbound_id']}): recorded refused SCHEMA_INVALID, replay refused MALFORMED_XML",
        f"replayed {count} messages: 1 divergence",
    ]
