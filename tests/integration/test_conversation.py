"""Every message of a trace through the switch (ISACS 05.31, 8.3): relays, receipts, status, restrictions."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta
from typing import Any

from lxml import etree

from gateway.core.errors import ErrorCode
from gateway.dev import samples
from gateway.store import deadlines, traces

from .conftest import Got, Switch

REQUEST: dict[str, Any] = {"exports": [("ZA", "MZ", "2019-06-14")]}


async def open_trace(switch: Switch, **options: object) -> str:
    """ZA asks MZ; both queues emptied; returns the TraceId."""
    outcome = await switch.send("ZA", samples.trace_request("ZA", **{**REQUEST, **options}))
    assert outcome.outcome == "accepted", outcome.detail
    switch.take("ZA")
    switch.take("MZ")
    assert outcome.trace_id
    return outcome.trace_id


async def exchange(switch: Switch, sender: str, root: etree._Element) -> tuple[Got, Got]:
    """Send within a trace; return (the sender's Receipt, the other party's Delivery)."""
    outcome = await switch.send(sender, root)
    assert outcome.outcome == "accepted", outcome.detail
    other = "MZ" if sender == "ZA" else "ZA"
    [receipt] = switch.take(sender)
    [delivery] = switch.take(other)
    assert receipt.kind == "Receipt" and delivery.kind == "Delivery"
    assert (delivery.find("Route/From"), delivery.find("Route/To"), delivery.find("Route/Rule")) == (
        sender,
        other,
        "reply",
    )
    payload = etree.fromstring(base64.b64decode(delivery.find("Payload") or ""))
    assert etree.QName(payload).localname == etree.QName(root).localname
    return receipt, delivery


async def test_whole_trace_with_return_resubmission_delay_and_restricted_partial_response(switch: Switch) -> None:
    """Request, acknowledgement, return, resubmission, delay and a restricted partial response, as both see it."""
    trace_id = await open_trace(switch, omit=("Caliber",), justification="Barrel worn; calibre unknown.")
    receipt, _ = await exchange(switch, "MZ", samples.reply("Acknowledgement", "MZ", trace_id))
    assert receipt.find("Status") == "acknowledged"
    returned = samples.reply("ReturnForCompletion", "MZ", trace_id, MissingItem=["caliber"], Note="Please measure it.")
    receipt, delivery = await exchange(switch, "MZ", returned)
    assert receipt.find("Status") == "returned"
    switch.clock.advance(timedelta(days=3))
    resubmitted = samples.trace_request(
        "ZA", trace_id=trace_id, resubmits=trace_id, created_at=switch.clock.now, **REQUEST
    )
    outcome = await switch.send("ZA", resubmitted)
    assert (outcome.outcome, outcome.trace_id) == ("accepted", trace_id), outcome.detail
    [receipt] = switch.take("ZA")
    [delivery] = switch.take("MZ")
    assert receipt.find("Status") == "resubmitted"
    assert delivery.find("Route/Rule") == "export-record"
    assert (
        delivery.find(
            "Deadlines/AcknowledgeBy",
        )
        is not None
    )
    fresh_ack = delivery.find("Deadlines/AcknowledgeBy") or ""
    assert fresh_ack.startswith((switch.clock.now + timedelta(days=7)).date().isoformat())
    await exchange(switch, "MZ", samples.reply("Acknowledgement", "MZ", trace_id, created_at=switch.clock.now))
    delay = samples.reply(
        "DelayNotice",
        "MZ",
        trace_id,
        created_at=switch.clock.now,
        Reason="ongoing-investigation",
        Text="Records held by a unit under investigation.",
        ExpectedBy="2027-02-15",
    )
    receipt, delivery = await exchange(switch, "MZ", delay)
    assert receipt.find("Status") == "delayed"
    response = samples.trace_response(
        "MZ",
        trace_id,
        created_at=switch.clock.now,
        partial=True,
        partial_reason="ongoing-investigation",
        restrictions=["competent-authorities-only", "no-onward-release-without-consent"],
        restriction_text="Release to the prosecuting authority only.",
    )
    receipt, delivery = await exchange(switch, "MZ", response)
    assert receipt.find("Status") == "responded"
    lifted = delivery.root.findall("{urn:itrace:1}Restrictions/{urn:itrace:1}Restriction")
    assert [r.get("code") for r in lifted] == ["competent-authorities-only", "no-onward-release-without-consent"]
    assert delivery.find("Restrictions/Text") == "Release to the prosecuting authority only."
    assert b"no-onward-release-without-consent" in base64.b64decode(delivery.find("Payload") or "")
    [row] = await switch.store.fetch(traces.select().where(traces.c.trace_id == trace_id))
    assert row.status == "responded" and "competent-authorities-only" in row.restrictions
    assert (row.delay_reason, row.delay_expected_by) == ("ongoing-investigation", "2027-02-15")


async def test_refusal_then_clarification(switch: Switch) -> None:
    """A refusal with its reason reaches the requester, who may still ask for clarification (8.3.4.2)."""
    trace_id = await open_trace(switch)
    await exchange(switch, "MZ", samples.reply("Acknowledgement", "MZ", trace_id))
    refusal = samples.reply("Refusal", "MZ", trace_id, Reason="national-security", Text="Not releasable.")
    receipt, _ = await exchange(switch, "MZ", refusal)
    assert receipt.find("Status") == "refused"
    receipt, _ = await exchange(switch, "ZA", samples.reply("Comment", "ZA", trace_id, Text="Could you say more?"))
    assert receipt.find("Status") == "refused"
    late = await switch.send("MZ", samples.reply("TraceResponse", "MZ", trace_id))
    assert late.code in {ErrorCode.SCHEMA_INVALID, ErrorCode.INVALID_STATE}


async def test_withdrawal_ends_the_trace(switch: Switch) -> None:
    """The requester withdraws; the requested state hears; nothing more is accepted, not even a comment."""
    trace_id = await open_trace(switch)
    receipt, _ = await exchange(switch, "ZA", samples.reply("Withdrawal", "ZA", trace_id, Text="Case closed."))
    assert receipt.find("Status") == "withdrawn"
    refused = await switch.send("MZ", samples.reply("Comment", "MZ", trace_id, Text="Noted."))
    assert refused.code == ErrorCode.INVALID_STATE
    [rejection] = switch.take("MZ")
    assert rejection.find("Code") == "INVALID_STATE" and switch.take("ZA") == []


async def test_out_of_turn_messages_change_nothing(switch: Switch) -> None:
    """Wrong sender, wrong state or unknown trace: refused with the exact code, the trace untouched."""
    trace_id = await open_trace(switch)
    cases = [
        ("ZA", samples.reply("Acknowledgement", "ZA", trace_id), ErrorCode.NOT_AUTHORIZED),
        ("KE", samples.reply("Comment", "KE", trace_id, Text="Me too."), ErrorCode.UNKNOWN_TRACE),
        ("ZA", samples.trace_request("ZA", **REQUEST, trace_id=trace_id, resubmits=trace_id), ErrorCode.INVALID_STATE),
        ("MZ", samples.reply("Acknowledgement", "MZ", "0d9a8b7c-6e5f-4a3b-9c2d-1e0f9a8b7c12"), ErrorCode.UNKNOWN_TRACE),
    ]
    for sender, root, code in cases:
        assert (await switch.send(sender, root)).code == code
    [row] = await switch.store.fetch(traces.select().where(traces.c.trace_id == trace_id))
    assert row.status == "delivered"
    assert [m.kind for m in switch.take("MZ")] == ["Rejection"]
    assert [m.kind for m in switch.take("ZA")] == ["Rejection", "Rejection"]


async def test_reasons_are_required(switch: Switch) -> None:
    """A delay, a refusal or a partial response without its reason code is REASON_REQUIRED."""
    trace_id = await open_trace(switch)
    await exchange(switch, "MZ", samples.reply("Acknowledgement", "MZ", trace_id))
    for root in (
        samples.reply("DelayNotice", "MZ", trace_id, Text="Later.", ExpectedBy="2027-01-01"),
        samples.reply("Refusal", "MZ", trace_id, Text="No."),
        samples.trace_response("MZ", trace_id, partial=True, partial_reason=None),
    ):
        outcome = await switch.send("MZ", root)
        assert outcome.code == ErrorCode.REASON_REQUIRED, outcome.detail
        assert "8.3.4.2" in (outcome.detail or "")
    [row] = await switch.store.fetch(traces.select().where(traces.c.trace_id == trace_id))
    assert row.status == "acknowledged"


async def test_confidentiality_not_guaranteed_is_visible_on_the_delivery(switch: Switch) -> None:
    """8.4: the requested state sees, on the Delivery itself, that confidentiality is not guaranteed."""
    await switch.send("ZA", samples.trace_request("ZA", confidentiality_guaranteed=False, **REQUEST))
    [delivery] = switch.take("MZ")
    element = delivery.root.find("{urn:itrace:1}Confidentiality")
    assert element is not None and element.get("guaranteed") == "false"
    assert delivery.find("Confidentiality/Reason")


async def test_status_query_reports_only_the_senders_own_traces(switch: Switch) -> None:
    """StatusQuery is answered by a signed StatusReport of the asking state's traces, with roles and deadlines."""
    mine = await open_trace(switch)
    await switch.send("KE", samples.trace_request("KE", import_marks=[("BR", 2014)]))
    incoming = await switch.send("BR", samples.trace_request("BR", exports=[("BR", "ZA", "2020-02-02")]))
    switch.take("KE")
    switch.take("BR")
    switch.take("ZA")
    outcome = await switch.send("ZA", samples.message("StatusQuery", "ZA"))
    assert outcome.outcome == "accepted"
    [report] = switch.take("ZA")
    assert report.kind == "StatusReport"
    lines = {t.findtext("{urn:itrace:1}TraceId"): t for t in report.root.iterfind("{urn:itrace:1}Trace")}
    assert set(lines) == {mine, incoming.trace_id}
    assert lines[mine].findtext("{urn:itrace:1}Role") == "outgoing"
    assert lines[incoming.trace_id].findtext("{urn:itrace:1}Counterpart") == "BR"
    assert lines[mine].findtext("{urn:itrace:1}Overdue") == "false"
    query = samples.message("StatusQuery", "ZA")
    etree.SubElement(query, "{urn:itrace:1}Role").text = "incoming"
    await switch.send("ZA", query)
    [report] = switch.take("ZA")
    assert [t.findtext("{urn:itrace:1}TraceId") for t in report.root.iterfind("{urn:itrace:1}Trace")] == [
        incoming.trace_id
    ]
    other = await switch.send("KE", samples.message("StatusQuery", "KE", trace_id=mine))
    stranger = str(uuid.uuid4())
    unknown = await switch.send("KE", samples.message("StatusQuery", "KE", trace_id=stranger))
    assert other.code == unknown.code == ErrorCode.UNKNOWN_TRACE
    assert (other.detail or "").replace(mine, "X") == (unknown.detail or "").replace(stranger, "X")


async def test_an_answer_before_the_acknowledgement_implies_it(switch: Switch) -> None:
    """A DelayNotice sent before any Acknowledgement is relayed; the acknowledgement is recorded as implied, its
    deadline notices are settled, the StatusReport says so, and a late Acknowledgement is refused as redundant."""
    trace_id = await open_trace(switch)
    switch.clock.advance(timedelta(days=1))
    delay = samples.reply(
        "DelayNotice",
        "MZ",
        trace_id,
        created_at=switch.clock.now,
        Reason="ongoing-investigation",
        Text="Later.",
        ExpectedBy="2027-01-01",
    )
    receipt, _ = await exchange(switch, "MZ", delay)
    assert receipt.find("Status") == "delayed"
    [row] = await switch.store.fetch(traces.select().where(traces.c.trace_id == trace_id))
    assert (row.acknowledgement, row.acknowledged_at is not None) == ("implied", True)
    notices = await switch.store.fetch(deadlines.select().where(deadlines.c.trace_id == trace_id))
    by_kind = {n.kind: n.status for n in notices}
    assert by_kind["acknowledgement-reminder"] == by_kind["acknowledgement-overdue"] == "cancelled"
    assert by_kind["response-overdue"] == "pending"
    await switch.send("ZA", samples.message("StatusQuery", "ZA", trace_id=trace_id))
    [report] = switch.take("ZA")
    [line] = report.root.iterfind("{urn:itrace:1}Trace")
    acknowledged = line.find("{urn:itrace:1}Acknowledged")
    assert acknowledged is not None and acknowledged.get("implied") == "true"
    assert line.findtext("{urn:itrace:1}Overdue") == "false"
    late = await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace_id, created_at=switch.clock.now))
    assert late.code == ErrorCode.INVALID_STATE and "implied" in (late.detail or "")
