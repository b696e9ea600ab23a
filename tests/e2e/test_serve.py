"""`tracegate serve` as its own process; national systems as separate AMQP clients over the real RabbitMQ."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta

from gateway.dev import samples
from gateway.dev.npc import NationalSystem
from gateway.dev.pki import DevPki, issue_certificate
from gateway.xml.signatures import Signer

from .conftest import Served, answer, signer


async def test_each_routing_rule_and_duplicates(npcs: dict[str, NationalSystem], pki: DevPki) -> None:
    """Requests go by export record, import mark and manufacture; a duplicate is answered again, not re-routed."""
    za, ke, mz = signer(pki, "ZA"), signer(pki, "KE"), signer(pki, "MZ")
    first = za.sign(samples.trace_request("ZA", import_marks=[("BR", 2014)], exports=[("ZA", "MZ", "2019-06-14")]))
    cases = [
        ("ZA", first, "MZ", "export-record"),
        ("KE", ke.sign(samples.trace_request("KE", import_marks=[("BR", 2014)])), "BR", "import-mark"),
        ("MZ", mz.sign(samples.trace_request("MZ", made_in="AT")), "AT", "manufacture"),
    ]
    receipts = {}
    for sender, body, destination, rule in cases:
        receipt = await answer(npcs, sender, body)
        assert (receipt.kind, receipt.find("RoutedTo"), receipt.find("Rule")) == (
            "Receipt",
            destination,
            rule,
        )
        [delivery] = await npcs[destination].receive(1)
        assert (delivery.kind, delivery.find("Route/From"), delivery.find("Route/Rule")) == (
            "Delivery",
            sender,
            rule,
        )
        receipts[sender] = receipt
    again = await answer(npcs, "ZA", first)
    assert (again.kind, again.message_id) == ("Receipt", receipts["ZA"].message_id)
    assert await npcs["MZ"].receive(1, timeout=1.5) == []


async def test_every_refusal_code_reachable_from_a_national_system(
    npcs: dict[str, NationalSystem], pki: DevPki
) -> None:
    """Each refusal reaches the sender as a Rejection with its code, and the switch keeps serving."""
    za, mz, ke = signer(pki, "ZA"), signer(pki, "MZ"), signer(pki, "KE")
    now = datetime.now(UTC)
    rogue_key, rogue_ca = issue_certificate(
        issuer_key=None,
        issuer_cert=None,
        subject_country="ZA",
        common_name="rogue",
        key_kind="ec",
        is_ca=True,
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=9),
    )
    rogue = Signer.from_objects(
        *issue_certificate(
            issuer_key=rogue_key,
            issuer_cert=rogue_ca,
            subject_country="ZA",
            common_name="ZA",
            key_kind="ec",
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=9),
        )
    )
    ca_key = pki.load_ca_key()
    expired = Signer.from_objects(
        *issue_certificate(
            issuer_key=ca_key,
            issuer_cert=pki.load_ca_cert(),
            subject_country="ZA",
            common_name="ZA",
            key_kind="ec",
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(days=1),
        )
    )
    request = samples.trace_request
    to_mz = {"exports": [("ZA", "MZ", "2019-06-14")]}
    unsigned = samples.trace_request("ZA", **to_mz)  # type: ignore[arg-type]
    from lxml import etree

    cases: list[tuple[str, bytes, str | None, str]] = [
        ("ZA", b"<t:TraceRequest xmlns:t='urn:itrace:1'><t:Header>", None, "MALFORMED_XML"),
        ("ZA", b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', None, "FORBIDDEN_XML"),
        ("ZA", b"<x>" + b"a" * 70_000 + b"</x>", None, "TOO_LARGE"),
        ("ZA", za.sign(samples.message("TraceRequest", "ZA")), None, "SCHEMA_INVALID"),
        ("ZA", etree.tostring(unsigned, xml_declaration=True, encoding="UTF-8"), None, "SIGNATURE_MISSING"),
        ("ZA", za.sign(request("ZA", **to_mz)).replace(b"BXK291", b"BXK297"), None, "SIGNATURE_INVALID"),  # type: ignore[arg-type]
        ("ZA", rogue.sign(request("ZA", **to_mz)), None, "CERTIFICATE_UNTRUSTED"),  # type: ignore[arg-type]
        ("ZA", expired.sign(request("ZA", **to_mz)), None, "CERTIFICATE_EXPIRED"),  # type: ignore[arg-type]
        ("ZA", mz.sign(request("ZA", **to_mz)), None, "SENDER_MISMATCH"),  # type: ignore[arg-type]
        ("ZA", za.sign(request("ZA", **to_mz)), "KE", "SENDER_MISMATCH"),  # type: ignore[arg-type]
        ("KE", ke.sign(request("KE", omit=("Caliber",))), None, "INCOMPLETE"),
        ("ZA", za.sign(request("ZA", exports=[("ZA", "FR", "2019-06-14")])), None, "NO_ROUTE"),
        ("MZ", mz.sign(request("MZ", exports=[("ZA", "MZ", "2019-06-14")])), None, "DESTINATION_IS_SENDER"),
        ("ZA", za.sign(request("ZA", import_marks=[("MW", 2021)])), None, "DESTINATION_NOT_CONNECTED"),
        ("ZA", za.sign(request("ZA", created_at=now - timedelta(days=30), **to_mz)), None, "STALE_MESSAGE"),  # type: ignore[arg-type]
        (
            "MZ",
            mz.sign(samples.reply("Acknowledgement", "MZ", "0d9a8b7c-6e5f-4a3b-9c2d-1e0f9a8b7c12")),
            None,
            "UNKNOWN_TRACE",
        ),
    ]
    for sender, body, routing_key, code in cases:
        got = await answer(npcs, sender, body, routing_key=routing_key)
        assert (got.kind, got.find("Code")) == ("Rejection", code), got.find("Detail")
        assert got.find("Detail")
    # Still serving after all of it.
    receipt = await answer(npcs, "ZA", za.sign(request("ZA", **to_mz)))  # type: ignore[arg-type]
    assert receipt.kind == "Receipt"


async def test_sigterm_drains_and_exits_cleanly(served: Served, npcs: dict[str, NationalSystem], pki: DevPki) -> None:
    """SIGTERM stops the switch with exit code 0 after answering what it had taken."""
    za = signer(pki, "ZA")
    for _ in range(20):
        await npcs["ZA"].send(za.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")])))
    got = await npcs["ZA"].receive(20, timeout=20)
    served.process.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(served.process.wait, 30) == 0
    assert len(got) == 20
    assert b'"stopped"' in served.log.read_bytes()
