"""The pipeline end to end over the in-memory broker, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree

from gateway.core.errors import ErrorCode
from gateway.core.model import NS
from gateway.core.ports import PublishFailed
from gateway.dev import samples
from gateway.xml.signatures import verify
from gateway.xml.trust import TrustStore

from .conftest import Switch

T = f"{{{NS}}}"


async def test_export_record_routes_to_the_importing_state(switch: Switch) -> None:
    """A request with an export record reaches the importing state with deadlines; the sender gets a receipt."""
    body = switch.sign(
        "ZA", samples.trace_request("ZA", import_marks=[("BR", 2014)], exports=[("ZA", "MZ", "2019-06-14")])
    )
    outcome = await switch.send("ZA", body)
    assert outcome.outcome == "accepted" and outcome.routed_to == "MZ" and outcome.rule == "export-record"
    [delivery] = switch.take("MZ")
    assert delivery.kind == "Delivery"
    assert (delivery.find("Route/From"), delivery.find("Route/To"), delivery.find("Route/Rule")) == (
        "ZA",
        "MZ",
        "export-record",
    )
    assert base64.b64decode(delivery.find("Payload") or "") == body
    acknowledge_by = datetime.fromisoformat((delivery.find("Deadlines/AcknowledgeBy") or "").replace("Z", "+00:00"))
    assert acknowledge_by - switch.clock.now == timedelta(days=7)
    [receipt] = switch.take("ZA")
    assert receipt.kind == "Receipt"
    assert (receipt.find("Status"), receipt.find("RoutedTo"), receipt.find("Rule")) == (
        "delivered",
        "MZ",
        "export-record",
    )
    assert switch.take("BR") == [] and switch.take("AT") == []


async def test_import_mark_then_manufacture(switch: Switch) -> None:
    """Without an export record the import mark decides; without either, the country of manufacture."""
    await switch.send("KE", samples.trace_request("KE", import_marks=[("BR", 2014)]))
    await switch.send("MZ", samples.trace_request("MZ", made_in="AT"))
    [to_br] = switch.take("BR")
    [to_at] = switch.take("AT")
    assert to_br.find("Route/Rule") == "import-mark" and to_at.find("Route/Rule") == "manufacture"


async def test_gateway_messages_are_signed_and_relay_the_original_signature(switch: Switch, pki) -> None:  # type: ignore[no-untyped-def]
    """The recipient can verify the gateway's signature on the Delivery and the sender's on its payload."""
    body = switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    await switch.send("ZA", body)
    [delivery] = switch.take("MZ")
    trust = TrustStore.load(pki.trust_dir)
    now = datetime.now(UTC)
    verify(delivery.root, sender="GATEWAY", trust=trust, now=now)
    payload = etree.fromstring(base64.b64decode(delivery.find("Payload") or ""))
    assert verify(payload, sender="ZA", trust=trust, now=now).root is not None


async def test_incomplete_request_names_every_missing_item(switch: Switch) -> None:
    """A request lacking essential items is refused INCOMPLETE with the list; nothing is delivered."""
    outcome = await switch.send("KE", samples.trace_request("KE", omit=("Caliber", "SerialNumber", "IntendedUse")))
    assert outcome.code == ErrorCode.INCOMPLETE
    [rejection] = switch.take("KE")
    assert rejection.find("Code") == "INCOMPLETE"
    assert "caliber, serial-number, intended-use" in (rejection.find("Detail") or "")
    assert rejection.find("RejectedMessageId") == outcome.message_id
    assert switch.take("AT") == []


async def test_justified_incomplete_request_is_delivered(switch: Switch) -> None:
    """With an IncompleteJustification the request goes through (8.3.2)."""
    outcome = await switch.send("KE", samples.trace_request("KE", omit=("Caliber",), justification="Worn barrel."))
    assert outcome.outcome == "accepted"
    assert [m.kind for m in switch.take("AT")] == ["Delivery"]


async def test_unreadable_serial_with_other_markings_is_complete(switch: Switch) -> None:
    """6.4.3: FrameMarkingsUnreadable plus other markings stand in for the serial number."""
    root = samples.trace_request("KE", omit=("SerialNumber",))
    firearm = root.find(f"{T}Firearm")
    assert firearm is not None
    etree.SubElement(firearm, f"{T}Marking", kind="proof", location="barrel").text = "eagle N"
    etree.SubElement(firearm, f"{T}FrameMarkingsUnreadable").text = "true"
    outcome = await switch.send("KE", root)
    assert outcome.outcome == "accepted", outcome.detail


async def test_duplicate_gets_the_first_answer_and_no_second_delivery(switch: Switch) -> None:
    """A repeated (sender, MessageId) changes nothing and is answered with the first receipt again."""
    body = switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    await switch.send("ZA", body)
    [first] = switch.take("ZA")
    assert len(switch.take("MZ")) == 1
    again = await switch.send("ZA", body)
    assert again.outcome == "duplicate"
    [second] = switch.take("ZA")
    assert (second.message_id, second.body) == (first.message_id, first.body)
    assert switch.take("MZ") == []


async def test_duplicate_of_a_refused_message_gets_the_same_rejection(switch: Switch) -> None:
    """A refused message sent again is refused again with the very same Rejection."""
    body = switch.sign("KE", samples.trace_request("KE", omit=("Caliber",)))
    await switch.send("KE", body)
    await switch.send("KE", body)
    first, second = switch.take("KE")
    assert first.body == second.body and first.find("Code") == "INCOMPLETE"


async def test_unroutable_requests(switch: Switch) -> None:
    """Destination is the sender, absent from the table, or suspended: each told with its own code."""
    cases = [
        (
            samples.trace_request("MZ", exports=[("ZA", "MZ", "2019-06-14")]),
            "MZ",
            ErrorCode.DESTINATION_IS_SENDER,
        ),
        (samples.trace_request("ZA", exports=[("ZA", "FR", "2019-06-14")]), "ZA", ErrorCode.NO_ROUTE),
        (samples.trace_request("ZA", import_marks=[("MW", 2020)]), "ZA", ErrorCode.DESTINATION_NOT_CONNECTED),
    ]
    for root, sender, code in cases:
        outcome = await switch.send(sender, root)
        assert outcome.code == code
        [rejection] = switch.take(sender)
        assert rejection.find("Code") == code.value


async def test_delegate_receives_for_the_delegating_state(switch: Switch) -> None:
    """A request routed to LS, which delegates to ZA, reaches ZA's queue with Route/For LS."""
    await switch.send("KE", samples.trace_request("KE", made_in="LS"))
    [delivery] = switch.take("ZA")
    assert (delivery.find("Route/To"), delivery.find("Route/For")) == ("ZA", "LS")


async def test_unconfirmed_publish_keeps_the_row_for_the_next_relay(switch: Switch) -> None:
    """If the broker does not confirm, nothing is lost: the next relay pass sends it."""
    switch.broker.fail_publishing = True
    body = switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    with pytest.raises(PublishFailed, match="not confirmed"):
        await switch.send("ZA", body)
    assert switch.take("MZ") == []
    switch.broker.fail_publishing = False
    await switch.relay.relay_once()
    assert [m.kind for m in switch.take("MZ")] == ["Delivery"]


async def test_stale_and_future_messages_are_refused(switch: Switch) -> None:
    """CreatedAt too old or too far ahead is STALE_MESSAGE."""
    old = samples.trace_request(
        "ZA", exports=[("ZA", "MZ", "2019-06-14")], created_at=switch.clock.now - timedelta(days=10)
    )
    ahead = samples.trace_request(
        "ZA", exports=[("ZA", "MZ", "2019-06-14")], created_at=switch.clock.now + timedelta(hours=1)
    )
    assert (await switch.send("ZA", old)).code == ErrorCode.STALE_MESSAGE
    assert (await switch.send("ZA", ahead)).code == ErrorCode.STALE_MESSAGE


async def test_gateway_message_types_are_not_accepted_from_states(switch: Switch) -> None:
    """A state cannot send a Receipt (or any gateway message) through the switch."""
    root = samples.message("Receipt", "ZA", trace_id="3f0c6a52-8b1e-4d55-9a57-0d4f7e1b2c01")
    etree.SubElement(root, f"{T}AcceptedMessageId").text = "3f0c6a52-8b1e-4d55-9a57-0d4f7e1b2c01"
    etree.SubElement(root, f"{T}Status").text = "delivered"
    assert (await switch.send("ZA", root)).code == ErrorCode.NOT_AUTHORIZED


async def test_sender_must_match_the_routing_key(switch: Switch) -> None:
    """ZA's signed message published under MZ's routing key is SENDER_MISMATCH, answered to MZ."""
    outcome = await switch.send(
        "ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]), routing_key="MZ"
    )
    assert outcome.code == ErrorCode.SENDER_MISMATCH
    assert [m.find("Code") for m in switch.take("MZ")] == ["SENDER_MISMATCH"]
    assert switch.take("ZA") == []


async def test_user_id_is_the_transport_identity_where_set(switch: Switch) -> None:
    """Where the broker validates user_id, it is who the message came from."""
    outcome = await switch.send(
        "ZA",
        samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]),
        routing_key="ZA",
        user_id="KE",
    )
    assert outcome.code == ErrorCode.SENDER_MISMATCH


async def test_state_cannot_sign_as_another(switch: Switch) -> None:
    """MZ's key on a message claiming to be from ZA is SENDER_MISMATCH."""
    forged = switch.signers["MZ"].sign(samples.trace_request("ZA", exports=[("ZA", "BR", "2019-06-14")]))
    outcome = await switch.send("ZA", forged)
    assert outcome.code == ErrorCode.SENDER_MISMATCH
    assert switch.take("BR") == []


async def test_every_message_is_stored_with_its_exact_bytes(switch: Switch) -> None:
    """Accepted and refused messages are kept byte for byte with the decision."""
    from gateway.store import inbound

    good = switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    await switch.send("ZA", good)
    await switch.send("KE", b"<not-xml")
    rows = await switch.store.fetch(inbound.select().order_by(inbound.c.id))
    assert [(r.body, r.outcome, r.code) for r in rows] == [
        (good, "accepted", None),
        (b"<not-xml", "refused", "MALFORMED_XML"),
    ]
