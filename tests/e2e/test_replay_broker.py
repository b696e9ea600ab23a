"""Hundreds of traces through `tracegate serve` over RabbitMQ, then the replay of its database: zero divergence."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from lxml import etree

from gateway.audit.replay import replay
from gateway.dev import samples
from gateway.dev.npc import NationalSystem
from gateway.dev.pki import DevPki
from gateway.settings import load_settings
from gateway.store import Store
from gateway.xml.signatures import Signer

from .conftest import STATES, Served, signer

TRACES = 200
Send = tuple[str, bytes, str | None]  # (publishing state, body, routing key if not its own)
Step = tuple[str, Callable[[], etree._Element]]  # (sender, how to make the message)


def committed(database: Path) -> int:
    """How many messages the gateway has recorded (read-only)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        count: int = db.execute("SELECT count(*) FROM inbound").fetchone()[0]
    return count


def decisions(database: Path) -> dict[tuple[str, str], int]:
    """(outcome, code or rule) → how many messages were decided so."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT outcome, coalesce(code, rule), count(*) FROM inbound GROUP BY 1, 2").fetchall()
    return {(outcome, why): n for outcome, why, n in rows}


class Story:
    """One trace's messages, phase by phase, signed as each state's national system."""

    def __init__(self, rng: random.Random, index: int, signers: dict[str, Signer]) -> None:
        self.rng, self.signers = rng, signers
        self.requester = rng.choice(STATES)
        self.party = rng.choice([s for s in STATES if s != self.requester])
        self.trace_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        rules: list[dict[str, Any]] = [
            {"exports": [(self.requester, self.party, "2019-06-14")]},
            {"import_marks": [(self.party, 2014)]},
            {"made_in": self.party},
        ]
        self.options = rules[index % 3]  # one routing rule each, in turn
        self.path = rng.choice(["answer", "answer", "delay", "return", "refuse", "withdraw", "open"])

    def _say(self, state: str, kind: str, **fields: str | list[str]) -> Step:
        """A message within the trace."""
        return state, lambda: samples.reply(kind, state, self.trace_id, created_at=None, **fields)

    def _respond(self) -> Step:
        """The response, restricted half of the time."""
        codes = ["competent-authorities-only"] if self.rng.random() < 0.5 else []
        text = "Prosecutor only." if codes else None
        return self.party, lambda: samples.trace_response(
            self.party, self.trace_id, restrictions=codes, restriction_text=text
        )

    def _resubmit(self) -> Step:
        """The returned request, resubmitted."""
        options, trace = self.options, self.trace_id
        return self.requester, lambda: samples.trace_request(self.requester, trace_id=trace, resubmits=trace, **options)

    def _plan(self) -> list[list[Step]]:
        """The messages after the request, phase by phase, on this trace's path."""
        ack, party, requester = "Acknowledgement", self.party, self.requester
        delay = {"Reason": "ongoing-investigation", "Text": "Held.", "ExpectedBy": "2027-02-15"}
        if self.path == "answer":
            return [[self._say(party, ack)], [self._respond()], [self._say(requester, "Comment", Text="Thanks.")]]
        if self.path == "delay":
            return [[self._say(party, ack)], [self._say(party, "DelayNotice", **delay)], [self._respond()]]
        if self.path == "return":
            returned = self._say(party, "ReturnForCompletion", MissingItem=["caliber"])
            return [[returned], [self._resubmit()], [self._say(party, ack)], [self._respond()]]
        if self.path == "refuse":
            refusal = self._say(party, "Refusal", Reason="national-security", Text="Not releasable.")
            late = [self._say(requester, "Comment", Text="More?"), self._respond()]  # the response is refused
            return [[self._say(party, ack)], [refusal], late]
        if self.path == "withdraw":
            return [[self._say(requester, "Withdrawal", Text="Case closed.")], [self._say(party, ack)]]
        return [[self._say(requester, ack)], [(party, lambda: samples.message("StatusQuery", party))]]

    def phase(self, n: int) -> list[Send]:
        """What this trace sends in phase `n` (0: the request), signed as each sender."""
        if n == 0:
            steps: list[Step] = [
                (
                    self.requester,
                    lambda: samples.trace_request(self.requester, message_id=self.trace_id, **self.options),
                )
            ]
        else:
            plan = self._plan()
            steps = plan[n - 1] if n <= len(plan) else []
        return [(state, self.signers[state].sign(make()), None) for state, make in steps]


def refused(rng: random.Random, signers: dict[str, Signer]) -> list[Send]:
    """Messages refused for what they are: incomplete, misaddressed, forged, unreadable, about nothing known."""
    za, to_mz = signers["ZA"], {"exports": [("ZA", "MZ", "2019-06-14")]}
    out: list[Send] = []
    for n in range(4):
        out.append(("ZA", za.sign(samples.trace_request("ZA", omit=("Caliber",), **to_mz)), None))  # type: ignore[arg-type]
        out.append(("ZA", za.sign(samples.trace_request("ZA", **to_mz)), "MZ"))  # type: ignore[arg-type]
        out.append(("ZA", za.sign(samples.trace_request("ZA", **to_mz)).replace(b"BXK291", b"BXK292"), None))  # type: ignore[arg-type]
        out.append(("ZA", f"<t:TraceRequest xmlns:t='urn:itrace:1'><t:Header>{n}".encode(), None))
        unknown = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        out.append(("MZ", signers["MZ"].sign(samples.reply("Acknowledgement", "MZ", unknown)), None))
        out.append(("KE", signers["KE"].sign(samples.trace_request("KE", exports=[("KE", "MW", "2020-01-01")])), None))
    return out


async def push(npcs: dict[str, NationalSystem], database: Path, sends: list[Send], expected: int) -> int:
    """Publish, then wait until the gateway has recorded `expected` messages in all; returns the new total."""
    for state, body, routing_key in sends:
        await npcs[state].send(body, routing_key=routing_key)
    expected += len(sends)
    deadline = time.monotonic() + 60
    while (done := committed(database)) < expected:
        assert time.monotonic() < deadline, f"only {done} of {expected} messages recorded"
        await asyncio.sleep(0.1)
    return expected


async def test_hundreds_of_traces_over_the_broker_replay_with_zero_divergence(
    served: Served, npcs: dict[str, NationalSystem], pki: DevPki
) -> None:
    """Two hundred traces by every rule and path, with refusals, through `tracegate serve`: replayed identically."""
    rng = random.Random(31)
    signers = {s: signer(pki, s) for s in STATES}
    stories = [Story(rng, i, signers) for i in range(TRACES)]
    database = Path(served.env["TRACEGATE_DATABASE_URL"].removeprefix("sqlite+aiosqlite:///"))
    total = await push(npcs, database, [s for story in stories for s in story.phase(0)] + refused(rng, signers), 0)
    for n in range(1, 5):
        total = await push(npcs, database, [s for story in stories for s in story.phase(n)], total)
    assert served.stop() == 0
    seen = decisions(database)
    assert all(seen.get(("accepted", rule)) for rule in ("export-record", "import-mark", "manufacture", "reply"))
    assert {why for outcome, why in seen if outcome == "refused"} >= {
        "INCOMPLETE",
        "SENDER_MISMATCH",
        "SIGNATURE_INVALID",
        "MALFORMED_XML",
        "UNKNOWN_TRACE",
        "DESTINATION_NOT_CONNECTED",
        "NOT_AUTHORIZED",
        "INVALID_STATE",
    }
    settings = load_settings(served.env)
    source = Store(settings.database_url)
    started = time.perf_counter()
    try:
        report = await replay(source, settings)
    finally:
        await source.close()
    elapsed = time.perf_counter() - started
    assert report.divergences == (), [str(d) for d in report.divergences[:5]]
    assert report.replayed == total >= 3 * TRACES
    print(f"replayed {report.replayed} messages in {elapsed:.1f} s: {report.replayed / elapsed:.0f} messages/s")
