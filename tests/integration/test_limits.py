"""Nothing the gateway sends is over the contract's 1 MiB: a request whose Delivery could not fit is refused
TOO_LARGE, status reports come a page at a time, and a signed message over the cap is never queued."""

from __future__ import annotations

import base64
import hashlib
import random
from datetime import timedelta

import pytest
from lxml import etree

from gateway.core.errors import ErrorCode, OutboundTooLarge
from gateway.core.model import MAX_MESSAGE_BYTES, NS
from gateway.dev import samples
from gateway.outbox.seal import seal
from gateway.xml import compose

from .conftest import Switch

T = f"{{{NS}}}"
TO_MZ = [("ZA", "MZ", "2019-06-14")]


def with_photos(root: etree._Element, *sizes: int) -> etree._Element:
    """The request with photographs of these sizes (random bytes, so nothing compresses or repeats)."""
    firearm = root.find(f"{T}Firearm")
    assert firearm is not None
    rng = random.Random(sum(sizes))
    for size in sizes:
        data = rng.randbytes(size)
        photo = etree.SubElement(firearm, f"{T}Photo", mediaType="image/jpeg", sha256=hashlib.sha256(data).hexdigest())
        photo.text = base64.b64encode(data).decode("ascii")
    return root


async def test_a_request_whose_delivery_would_pass_the_cap_is_refused_too_large(switch: Switch) -> None:
    """Two 370 KB photographs: the request (about 1 MB) is within the cap, its Delivery (base64 again, about 1.3 MB)
    is not; ZA hears TOO_LARGE naming the real limit, MZ gets nothing, and no trace opens."""
    body = switch.sign("ZA", with_photos(samples.trace_request("ZA", exports=TO_MZ), 370_000, 370_000))
    assert len(body) < MAX_MESSAGE_BYTES
    outcome = await switch.send("ZA", body)
    assert outcome.code == ErrorCode.TOO_LARGE and outcome.trace_id is None
    assert f"about {compose.relayable_bytes(MAX_MESSAGE_BYTES)} bytes" in (outcome.detail or "")
    [rejection] = switch.take("ZA")
    assert rejection.find("Code") == "TOO_LARGE" and switch.take("MZ") == []


async def test_the_largest_relayable_request_is_delivered_within_the_cap(switch: Switch) -> None:
    """A request just under `relayable_bytes` is delivered, and its signed Delivery is within 1 MiB."""
    bare = len(switch.sign("ZA", samples.trace_request("ZA", exports=TO_MZ)))
    photo = (compose.relayable_bytes(MAX_MESSAGE_BYTES) - bare - 400) // 4 * 3
    body = switch.sign("ZA", with_photos(samples.trace_request("ZA", exports=TO_MZ), photo // 2, photo - photo // 2))
    assert compose.relayable_bytes(MAX_MESSAGE_BYTES) - 400 < len(body) <= compose.relayable_bytes(MAX_MESSAGE_BYTES)
    outcome = await switch.send("ZA", body)
    assert outcome.outcome == "accepted", outcome.detail
    [delivery] = switch.take("MZ")
    assert delivery.kind == "Delivery" and len(body) * 4 // 3 < len(delivery.body) <= MAX_MESSAGE_BYTES


async def test_status_reports_come_a_page_at_a_time(switch: Switch) -> None:
    """Five traces, Limit 2: pages of 2, 2 and 1 in opening order, Next on all but the last; After naming a trace
    that is not the asker's is UNKNOWN_TRACE."""
    opened = []
    for _ in range(5):
        switch.clock.advance(timedelta(seconds=1))
        outcome = await switch.send("ZA", samples.trace_request("ZA", exports=TO_MZ, created_at=switch.clock.now))
        assert outcome.trace_id
        opened.append(outcome.trace_id)
    switch.take("ZA")
    pages: list[list[str]] = []
    after = None
    while True:
        query = samples.message("StatusQuery", "ZA", created_at=switch.clock.now)
        if after:
            etree.SubElement(query, f"{T}After").text = after
        etree.SubElement(query, f"{T}Limit").text = "2"
        assert (await switch.send("ZA", query)).outcome == "accepted"
        [report] = switch.take("ZA")
        pages.append([t.findtext(f"{T}TraceId") or "" for t in report.root.iterfind(f"{T}Trace")])
        after = report.root.findtext(f"{T}Next")
        if after is None:
            break
        assert after == pages[-1][-1]
    assert pages == [opened[0:2], opened[2:4], opened[4:5]]
    foreign = await switch.send("KE", samples.trace_request("KE", import_marks=[("BR", 2014)]))
    assert foreign.trace_id
    query = samples.message("StatusQuery", "ZA", created_at=switch.clock.now)
    etree.SubElement(query, f"{T}After").text = foreign.trace_id
    assert (await switch.send("ZA", query)).code == ErrorCode.UNKNOWN_TRACE


async def test_a_full_page_of_a_thousand_traces_is_far_inside_the_cap(switch: Switch) -> None:
    """The page size's margin: a report of 1,000 lines, every optional element present, signed, is under 1 MiB."""
    line = compose.StatusLine(
        trace_id="6f1c2b9e-4d3a-4c8b-9e7f-0a1b2c3d4e5f",
        role="incoming",
        counterpart="ZA",
        status="acknowledged",
        deadlines=None,
        overdue=True,
        acknowledged=None,
    )
    report = compose.status_report(now=switch.clock.now, lines=[line] * 1000, next_after=line.trace_id)
    signed = seal(switch.pipeline.signer, switch.pipeline.table, "StatusReport", "ZA", report)
    assert len(signed.body) < MAX_MESSAGE_BYTES // 2


def test_a_signed_message_over_the_cap_is_never_queued(switch: Switch) -> None:
    """`seal` refuses to produce bytes over the cap: the last guard behind the checks above."""
    root = compose.rejection(now=switch.clock.now, rejected_id=None, code=ErrorCode.SCHEMA_INVALID, detail="x" * 999)
    with pytest.raises(OutboundTooLarge, match="over the 1500-byte cap"):
        seal(switch.pipeline.signer, switch.pipeline.table, "Rejection", "ZA", root, max_bytes=1500)
