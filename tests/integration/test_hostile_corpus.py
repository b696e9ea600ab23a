"""The hostile-input corpus through the real pipeline: every input refused with exactly its code, the switch unharmed.

The corpus (`tests/data/hostile/corpus.toml`, loaded by `tests/hostile_corpus.py`) has several hundred inputs. The
`switch` fixture of conftest builds a fresh switch per test, which costs more than the test itself at this size, so
this module builds one switch per database for the whole module (`corpus_sqlite`, `corpus_postgresql`: the same
assembly as `switch`, over the in-memory broker) and keeps tests independent: recipes make fresh MessageIds, static
files carry distinct ones (and distinct bytes, since unreadable bodies are keyed by their digest), the clock is set
from the wall clock and every queue is emptied before and after each input.

Database choice: the full corpus runs on SQLite (about 30 s); PostgreSQL runs a deterministic sample of about 100
inputs (each class's first entry, every seventh entry, and every entry whose recipe drives a trace first), which keeps
the module under a minute. Most refusals are decided before the database is touched; the ones that read traces
(wrong party, wrong state, replays) are all in the sample. Inputs the gateway is known to answer wrongly carry
`xfail_reason` in the manifest and are strict xfails here, so a fix shows up as an XPASS to be unmarked.

Replays are not refusals and are asserted separately (`test_replay_*`), as are the inputs that look hostile but
must be accepted (character references, prolog PIs and comments).
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from lxml import etree

from gateway.adapters.memory import MemoryBroker
from gateway.core.errors import ErrorCode
from gateway.dev import samples
from gateway.dev.pki import DevPki
from gateway.xml.signatures import Signer, verify
from tests.conftest import POSTGRES_URL
from tests.hostile_corpus import HERE, RECIPES, Context, Entry, load_manifest, materialize, now_utc

from .conftest import Clock, Switch, _assemble, settings_for

ENTRIES = load_manifest()
TABLE_STATES = ("ZA", "MZ", "BR", "AT", "KE", "MW", "LS")
CONTRACT_CODES = {code.value for code in ErrorCode} - {ErrorCode.PROCESSING_FAILED.value}
MIN_CORPUS = 200
DETAIL_LIMIT = 1000
TO_MZ = [("ZA", "MZ", "2019-06-14")]


def _sample() -> list[Entry]:
    """The PostgreSQL sample: each class's first entry, every seventh entry, and every trace-state entry."""
    seen: set[str] = set()
    chosen = []
    for index, entry in enumerate(ENTRIES):
        first = entry.attack_class not in seen
        seen.add(entry.attack_class)
        stateful = entry.recipe in {"in_trace", "trace_id_reused", "replayed"}
        if first or stateful or index % 7 == 0:
            chosen.append(entry)
    return chosen


def _params(entries: list[Entry]) -> Iterator[object]:
    """One pytest param per entry, id = its name; known gateway faults are strict xfails."""
    for entry in entries:
        marks = [pytest.mark.xfail(reason=entry.xfail_reason, strict=True)] if entry.xfail_reason else []
        yield pytest.param(entry, id=entry.name, marks=marks)


async def _build(pki: DevPki, table: Path, url: str, schema: str | None) -> Switch:
    """A switch as conftest's `switch` fixture builds it, on `url`."""
    signers = {s: Signer.from_files(pki.key_path(s), pki.cert_path(s)) for s in pki.states}
    return await _assemble(settings_for(pki, table, url, schema), MemoryBroker(), Clock(), signers)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def corpus_sqlite(
    pki: DevPki, routing_table: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Switch]:
    """One switch on SQLite for the whole corpus."""
    path = tmp_path_factory.mktemp("corpus") / "tracegate.db"
    switch = await _build(pki, routing_table, f"sqlite+aiosqlite:///{path}", None)
    yield switch
    await switch.store.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def corpus_postgresql(pki: DevPki, routing_table: Path) -> AsyncIterator[Switch]:
    """One switch on a fresh PostgreSQL schema for the sample."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    switch = await _build(pki, routing_table, POSTGRES_URL, schema)
    yield switch
    await switch.store.close()
    drop = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-q", "-c", drop], check=False, capture_output=True
    )


def _drain(switch: Switch) -> None:
    """Empty every state's queue."""
    for state in TABLE_STATES:
        switch.broker.take(state)


async def _refused_exactly(switch: Switch, pki: DevPki, entry: Entry) -> None:
    """Publish `entry` and check the refusal, the Rejection, the silence elsewhere and the switch's health."""
    switch.clock.now = now_utc()
    _drain(switch)
    ctx = Context(pki=pki, signers=switch.signers, now=switch.clock.now, setup=switch.send)
    body = await materialize(entry, ctx)
    _drain(switch)

    outcome = await switch.send(entry.routing_key, body, routing_key=entry.routing_key, user_id=entry.user_id)
    assert (outcome.outcome, outcome.code) == ("refused", entry.code), f"{entry.name}: {outcome.detail}"

    answers = switch.take(entry.transport_sender)
    assert [a.kind for a in answers] == ["Rejection"], f"{entry.name}: {[a.kind for a in answers]}"
    rejection = answers[0]
    assert rejection.find("Code") == entry.code
    signed = verify(
        etree.fromstring(rejection.body), sender="GATEWAY", trust=switch.pipeline.trust, now=switch.clock.now
    )
    assert signed.root.findtext("{urn:itrace:1}Detail") == rejection.find("Detail")
    detail = rejection.find("Detail") or ""
    assert detail.strip(), "the Detail must say why"
    assert len(detail) < DETAIL_LIMIT, f"Detail is {len(detail)} characters"
    echoed = [m for m in entry.forbidden_in_detail if m.lower() in detail.lower()]
    assert not echoed, f"the Detail echoes attacker text {echoed}: {detail[:200]!r}"
    for state in TABLE_STATES:
        if state != entry.transport_sender:
            assert switch.take(state) == [], f"{state} was sent something"

    good = ctx.request(created_at=switch.clock.now)
    after = await switch.send("ZA", switch.sign("ZA", good))
    assert after.outcome == "accepted", f"the switch stopped serving: {after.code} {after.detail}"
    _drain(switch)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("entry", list(_params(ENTRIES)))
async def test_corpus_input_is_refused_with_its_code_on_sqlite(
    corpus_sqlite: Switch, pki: DevPki, entry: Entry
) -> None:
    """Each corpus input is refused with exactly its code, a clean signed Rejection to its sender only (SQLite)."""
    await _refused_exactly(corpus_sqlite, pki, entry)


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("entry", list(_params(_sample())))
async def test_corpus_sample_is_refused_with_its_code_on_postgresql(
    corpus_postgresql: Switch, pki: DevPki, entry: Entry
) -> None:
    """A sample of the corpus gets the same refusals on PostgreSQL."""
    await _refused_exactly(corpus_postgresql, pki, entry)


def test_manifest_has_at_least_200_inputs_across_the_attack_classes() -> None:
    """The manifest lists ≥ 200 inputs, each well-formed: a contract code, an existing file or a known recipe."""
    per_class = Counter(entry.attack_class for entry in ENTRIES)
    per_code = Counter(entry.code for entry in ENTRIES)
    width = max(len(name) for name in [*per_class, *per_code])
    print(f"\nhostile corpus: {len(ENTRIES)} inputs in {len(per_class)} attack classes")
    for name, count in sorted(per_class.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {name:<{width}}  {count:>4}")
    print("by expected code:")
    for code, count in sorted(per_code.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {code:<{width}}  {count:>4}")
    known = [e.name for e in ENTRIES if e.xfail_reason]
    print(f"known gateway faults (xfail): {len(known)}")
    assert len(ENTRIES) >= MIN_CORPUS
    assert all(count >= 3 for count in per_class.values()), per_class
    assert set(per_code) <= CONTRACT_CODES
    referenced = {e.file for e in ENTRIES if e.file}
    on_disk = {f"static/{p.name}" for p in (HERE / "static").iterdir()}
    assert referenced == on_disk, "every static file is listed once, and every listed file exists"
    digests = Counter(hashlib.sha256((HERE / name).read_bytes()).hexdigest() for name in referenced)
    assert max(digests.values()) == 1, "two static inputs with the same bytes would be answered as duplicates"
    assert {e.recipe for e in ENTRIES if e.recipe} <= set(RECIPES)


# ----------------------------------------------------------------------------- replays, and what must pass


async def test_replay_of_an_accepted_request_is_a_duplicate_answered_with_the_first_receipt(switch: Switch) -> None:
    """The same signed bytes twice: the second is a duplicate, gets the first Receipt again, delivers nothing."""
    body = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ))
    first = await switch.send("ZA", body)
    assert first.outcome == "accepted"
    [receipt] = switch.take("ZA")
    assert [d.kind for d in switch.take("MZ")] == ["Delivery"]
    again = await switch.send("ZA", body)
    assert (again.outcome, again.code) == ("duplicate", None)
    [repeat] = switch.take("ZA")
    assert repeat.body == receipt.body
    assert switch.take("MZ") == []


async def test_replay_of_a_refused_message_gets_the_same_rejection_again(switch: Switch) -> None:
    """A refused message sent again is a duplicate: the first Rejection's exact bytes, nothing else."""
    body = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ, omit=("Make",)))
    first = await switch.send("ZA", body)
    assert (first.outcome, first.code) == ("refused", "INCOMPLETE")
    [rejection] = switch.take("ZA")
    again = await switch.send("ZA", body)
    assert (again.outcome, again.code) == ("duplicate", "INCOMPLETE")
    [repeat] = switch.take("ZA")
    assert repeat.body == rejection.body
    assert switch.take("MZ") == []


async def test_replay_of_a_message_id_with_other_content_has_no_second_effect(switch: Switch) -> None:
    """A second, differently signed message reusing an accepted MessageId is a duplicate: no new trace, no Delivery."""
    message_id = str(uuid.uuid4())
    first = await switch.send("ZA", samples.trace_request("ZA", exports=TO_MZ, message_id=message_id))
    assert first.outcome == "accepted"
    switch.take("ZA"), switch.take("MZ")
    other = samples.trace_request("ZA", exports=[("ZA", "BR", "2020-01-01")], message_id=message_id, serial="OTHER9")
    again = await switch.send("ZA", other)
    assert again.outcome == "duplicate"
    assert [r.kind for r in switch.take("ZA")] == ["Receipt"]
    assert switch.take("BR") == [] and switch.take("MZ") == []


async def test_character_references_in_signed_values_are_not_refused(switch: Switch) -> None:
    """Character references in signed values: accepted, not FORBIDDEN_XML (they are no entity)."""
    body = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ))
    body = body.replace(b"BXK291", b"BXK&#50;&#x39;1", 1).replace(b"Glock", b"Gl&#111;ck", 1)
    outcome = await switch.send("ZA", body)
    assert outcome.outcome == "accepted", f"{outcome.code}: {outcome.detail}"
    assert outcome.routed_to == "MZ"


@pytest.mark.parametrize("where", ["before", "after"])
async def test_a_comment_beside_the_root_is_unsigned_content(switch: Switch, where: str) -> None:
    """A comment before or after the root is covered by no signature (URI="" leaves comments out), and the
    received bytes are relayed whole: refused SIGNATURE_INVALID, so nothing unsigned reaches the other state."""
    body = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ))
    comment = b"\n<!-- URGENT: call +00 555 0100 to confirm this trace -->\n"
    declaration_end = body.index(b"?>") + 2
    body = body[:declaration_end] + comment + body[declaration_end:] if where == "before" else body + comment
    outcome = await switch.send("ZA", body)
    assert outcome.code == "SIGNATURE_INVALID", outcome.detail
    assert f"a comment {where} the root element" in (outcome.detail or "")
    assert "URGENT" not in (outcome.detail or "")


async def test_a_prolog_processing_instruction_is_signed_content(switch: Switch) -> None:
    """URI="" signs the whole document, prolog PIs included (XML-DSig 4.4.3.2): a PI added to the prolog after
    signing breaks the signature; it is SIGNATURE_INVALID, not FORBIDDEN_XML."""
    pi = b'\n<?xml-stylesheet type="text/xsl" href="view.xsl"?>\n'
    body = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ))
    declaration_end = body.index(b"?>") + 2
    outcome = await switch.send("ZA", body[:declaration_end] + pi + body[declaration_end:])
    assert outcome.code == "SIGNATURE_INVALID", outcome.detail
    untouched = switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ))
    assert (await switch.send("ZA", untouched)).outcome == "accepted"


async def test_doctype_text_in_cdata_or_a_prolog_comment_is_not_a_dtd(switch: Switch) -> None:
    """'<!DOCTYPE' as CDATA text in a signed value is accepted, and in a comment before the root it is refused as
    unsigned content, not FORBIDDEN_XML: neither is a DTD."""
    request = samples.trace_request("ZA", exports=TO_MZ, notes="The seized laptop showed a <!DOCTYPE html> page.")
    body = switch.sign("ZA", request)
    escaped = b"&lt;!DOCTYPE html&gt;"
    assert escaped in body
    body = body.replace(escaped, b"<![CDATA[<!DOCTYPE html>]]>", 1)  # the same text, so the same digest
    outcome = await switch.send("ZA", body)
    assert outcome.outcome == "accepted", f"{outcome.code}: {outcome.detail}"
    declaration_end = body.index(b"?>") + 2
    commented = body[:declaration_end] + b"\n<!-- exported without <!DOCTYPE -->" + body[declaration_end:]
    outcome = await switch.send("ZA", commented.replace(b"<![CDATA[<!DOCTYPE html>]]>", escaped))
    assert outcome.code == "SIGNATURE_INVALID", "a prolog comment is unsigned content, not a DTD"
