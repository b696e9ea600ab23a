"""Property-based fuzzing: hostile bytes get an `Envelope`, a `Refused` or an `Outcome` with a contract code, no crash.

Hypothesis draws arbitrary bytes, XML-ish token soup and mutations of a genuine signed request (byte flips,
truncations, insertions of XML syntax and junk, deletions, duplications), and requests reshaped before signing
(values, elements, message type changed) so that they pass the signature and reach the schema, completeness,
routing and lifecycle stages. The two envelope properties run 150 examples each (about a second); the two pipeline
properties run 60 examples each per database through the `switch` fixture (about 8 s in all) and check that the
process's resident memory grows by less than 200 MB over the run.
No example database is written (`database=None`); Hypothesis keeps only its caches, in the git-ignored `.hypothesis/`.
"""

from __future__ import annotations

import copy
import resource
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from gateway.core.errors import ErrorCode, Refused
from gateway.core.model import NS
from gateway.dev import samples
from gateway.dev.pki import DevPki
from gateway.xml.envelope import Envelope, open_envelope
from gateway.xml.signatures import Signer

from .conftest import Switch

LIMIT = 1_048_576
CONTRACT_CODES = frozenset(code.value for code in ErrorCode) - {ErrorCode.PROCESSING_FAILED.value}
TABLE_STATES = ("ZA", "MZ", "BR", "AT", "KE", "MW", "LS")
MEMORY_BOUND_KB = 200 * 1024  # ru_maxrss is in kilobytes on Linux
TO_MZ = [("ZA", "MZ", "2019-06-14")]

# Pieces of XML (and of attacks on it) that mutations splice in; no token names an existing local file.
TOKENS = [
    b"<",
    b">",
    b"/>",
    b"&",
    b";",
    b'"',
    b"'",
    b"=",
    b"]]>",
    b"<![CDATA[x]]>",
    b"<!-- c -->",
    b"<!---->",
    b"<?pi data?>",
    b'<?xml version="1.0"?>',
    b"<!DOCTYPE t:TraceRequest>",
    b'<!DOCTYPE t [<!ENTITY e "lol">]>',
    b"&e;",
    b"&amp;",
    b"&#65;",
    b"&#0;",
    b"&#xD800;",
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="x"/>',
    b"<t:Firearm>",
    b"</t:Firearm>",
    b"<t:Header/>",
    b'xmlns:t="urn:other"',
    b' xmlns="urn:itrace:1"',
    b"<ds:Signature/>",
    b"<ds:Object>x</ds:Object>",
    b"\x00",
    b"\xff",
    b"\xc0\xbc",
    b"\xed\xa0\x80",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    "é".encode(),
    "\ufffe".encode(),
    b"\n" * 3,
    b"A" * 200,
]
XMLISH = [
    "<",
    ">",
    "</",
    "/>",
    "=",
    '"',
    "'",
    "&",
    ";",
    "#",
    "?",
    "!",
    "[",
    "]",
    "-",
    ":",
    " ",
    "\n",
    "t",
    "x",
    "<t:",
    "</t:",
    'xmlns:t="urn:itrace:1"',
    "TraceRequest",
    "Header",
    "MessageId",
    "<?xml",
    "<!DOCTYPE",
    "<!ENTITY",
    "SYSTEM",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "&#",
    "ds:Signature",
    "é",
    "\x00",
]

Op = tuple[str, float, int, bytes]

operations = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255), st.just(b"")),
    st.tuples(st.just("truncate"), st.floats(0, 1), st.just(0), st.just(b"")),
    st.tuples(st.just("insert"), st.floats(0, 1), st.just(0), st.sampled_from(TOKENS)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.just(0), st.binary(min_size=1, max_size=24)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(1, 64), st.just(b"")),
    st.tuples(st.just("duplicate"), st.floats(0, 1), st.integers(1, 512), st.just(b"")),
)
mutations = st.lists(operations, min_size=1, max_size=4)
xmlish = st.lists(st.sampled_from(XMLISH), max_size=80).map(lambda parts: "".join(parts).encode("utf-8"))


def mutate(body: bytes, ops: list[Op]) -> bytes:
    """Apply the drawn operations in turn; positions are fractions of the current length."""
    data = bytearray(body)
    for kind, where, amount, piece in ops:
        at = min(int(where * len(data)), max(len(data) - 1, 0))
        if kind == "flip" and data:
            data[at] ^= amount
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = piece
        elif kind == "delete":
            del data[at : at + amount]
        elif kind == "duplicate":
            data[at:at] = data[at : at + amount]
    return bytes(data)


# Structure-aware mutations of the unsigned request, signed afterwards: they pass the signature and reach the schema,
# the completeness check, routing and the lifecycle with values no test wrote by hand.
KINDS = ["TraceRequest", "Acknowledgement", "TraceResponse", "Refusal", "Comment", "StatusQuery", "Receipt"]
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            " ",
            "ZA",
            "MZ",
            "MW",
            "LS",
            "XX",
            "za",
            "GATEWAY",
            str(uuid.UUID(int=0)),
            "2019-02-28",
            "9999-12-31",
            "0001-01-01",
            "2019-06-14T00:00:00Z",
            "0",
            "-1",
            "99999999999999999999",
            "1e309",
            "NaN",
            "true",
            "false",
            "export-record",
            "ongoing-investigation",
            "incoming",
            "caliber",
            "A" * 5000,
        ]
    ),
)
structural = st.lists(
    st.one_of(
        st.tuples(st.just("text"), st.floats(0, 1), VALUES),
        st.tuples(st.just("drop"), st.floats(0, 1), st.just("")),
        st.tuples(st.just("duplicate"), st.floats(0, 1), st.just("")),
        st.tuples(st.just("attribute"), st.floats(0, 1), VALUES),
        st.tuples(st.just("rename-root"), st.just(0.0), st.sampled_from(KINDS)),
        st.tuples(st.just("trace-id"), st.just(0.0), st.sampled_from(["random", "zero"])),
    ),
    min_size=1,
    max_size=4,
)
Edit = tuple[str, float, str]


def reshape(root: etree._Element, edits: list[Edit]) -> etree._Element:
    """Apply structure-aware edits to a copy of an unsigned message; values lxml cannot hold are skipped."""
    root = copy.deepcopy(root)
    for kind, where, value in edits:
        elements = [e for e in root.iter() if isinstance(e.tag, str)]
        target = elements[min(int(where * len(elements)), len(elements) - 1)]
        parent = target.getparent()
        try:
            if kind == "text" and len(target) == 0:
                target.text = value
            elif kind == "drop" and parent is not None:
                parent.remove(target)
            elif kind == "duplicate" and parent is not None:
                target.addnext(copy.deepcopy(target))
            elif kind == "attribute":
                target.set("guaranteed" if "Confidentiality" in str(target.tag) else "location", value)
            elif kind == "rename-root":
                root.tag = f"{{{NS}}}{value}"
            elif kind == "trace-id":
                header = root.find(f"{{{NS}}}Header")
                if header is not None:
                    trace_id = str(uuid.uuid4()) if value == "random" else str(uuid.UUID(int=0))
                    etree.SubElement(header, f"{{{NS}}}TraceId").text = trace_id
        except ValueError:  # not XML-compatible text: nothing a national system could send
            continue
    return root


def _open(body: bytes) -> Envelope | Refused:
    """open_envelope's result or its refusal; any other exception propagates and fails the property."""
    try:
        return open_envelope(body, max_bytes=LIMIT)
    except Refused as refused:
        return refused


def _envelope_or_refused(body: bytes) -> None:
    """The property: an Envelope, or Refused with a contract code and a detail; anything else propagates."""
    result = _open(body)
    if isinstance(result, Refused):
        assert result.code.value in CONTRACT_CODES
        assert isinstance(result.detail, str) and result.detail
        return
    assert isinstance(result.kind, str) and result.kind
    assert result.message_id is None or len(result.message_id) <= 64


ENVELOPE_SETTINGS = settings(max_examples=150, deadline=None, database=None)


@ENVELOPE_SETTINGS
@given(st.one_of(st.binary(max_size=2048), xmlish))
def test_open_envelope_on_arbitrary_bytes_returns_or_refuses(body: bytes) -> None:
    """Arbitrary bytes and XML-ish soup: open_envelope returns an Envelope or raises Refused, nothing else."""
    _envelope_or_refused(body)


@ENVELOPE_SETTINGS
@given(ops=mutations)
def test_open_envelope_on_mutated_signed_requests_returns_or_refuses(signed_request: bytes, ops: list[Op]) -> None:
    """Flipped, cut, spliced, shortened, repeated signed requests: an Envelope or Refused, nothing else."""
    _envelope_or_refused(mutate(signed_request, ops))


PIPELINE_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@PIPELINE_SETTINGS
@given(ops=mutations)
async def test_pipeline_on_mutated_signed_requests_answers_with_contract_codes(
    switch: Switch, memory: Callable[[], int], ops: list[Op]
) -> None:
    """Mutated signed requests through the whole pipeline: accepted or a contract code, no crash; memory bounded."""
    request = samples.trace_request("ZA", exports=TO_MZ, created_at=switch.clock.now)
    await _answered_within_the_contract(switch, memory, mutate(switch.sign("ZA", request), ops))


@PIPELINE_SETTINGS
@given(edits=structural)
async def test_pipeline_on_reshaped_then_signed_messages_answers_with_contract_codes(
    switch: Switch, memory: Callable[[], int], edits: list[Edit]
) -> None:
    """Requests with values, elements or types changed, then signed: accepted or a contract code; memory bounded."""
    request = samples.trace_request("ZA", exports=TO_MZ, created_at=switch.clock.now)
    await _answered_within_the_contract(switch, memory, switch.sign("ZA", reshape(request, edits)))


async def _answered_within_the_contract(switch: Switch, memory: Callable[[], int], body: bytes) -> None:
    """Publish as ZA: accepted, refused with a contract code, or a duplicate; queues emptied; memory bounded."""
    outcome = await switch.send("ZA", body)
    assert outcome.outcome in {"accepted", "refused", "duplicate"}
    if outcome.outcome == "refused":
        assert outcome.code in CONTRACT_CODES, outcome.code
    else:
        assert outcome.code is None or outcome.code in CONTRACT_CODES
    for state in TABLE_STATES:
        switch.broker.take(state)
    assert memory() < MEMORY_BOUND_KB, f"resident memory grew by {memory() // 1024} MB"


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def signed_request(pki: DevPki) -> bytes:
    """One genuine signed ZA request, the seed every envelope mutation starts from."""
    signer = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    return signer.sign(samples.trace_request("ZA", exports=TO_MZ))


def _resident_kb() -> int:
    """The process's resident set now (kB), from /proc: what it holds, not the highest it ever held."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() // 1024


@pytest.fixture(scope="module")
def memory() -> Callable[[], int]:
    """Growth of the process's resident set (kB) since the module's first pipeline example.

    The resident set, not the peak: in a long test session the peak depends on what earlier modules did.
    """
    start = _resident_kb()
    return lambda: _resident_kb() - start
