"""Duplicate slots on the real RabbitMQ, where every state shares one broker user (the set-up the switch refuses by
default, and the one in which a forger can publish under another state's routing key): a refusal made before the
signature and sender were verified holds no slot, so the genuine message with the same MessageId is processed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from gateway.app import Gateway
from gateway.dev import samples
from gateway.dev.npc import NationalSystem
from gateway.dev.pki import DevPki
from gateway.xml.signatures import Signer
from tests.forge import stranger

from .conftest import settings_for


async def test_a_forgery_or_a_failed_signature_does_not_take_the_genuine_messages_slot(
    pki: DevPki, routing_table: Path, fresh_amqp_url: str, tmp_path: Path
) -> None:
    """Under ZA's routing key: a forgery with ZA's next MessageId (a stranger's key), then ZA's own message with a
    signature that breaks in transit, then ZA's genuine message with that same MessageId, in upper case: the
    first two are refused (to ZA's queue: the routing key is all the switch knows here), the third is delivered."""
    settings = dataclasses.replace(
        settings_for(pki, routing_table, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", None),
        broker_url=fresh_amqp_url,
        require_user_id=False,
    )
    gateway = Gateway(settings)
    await gateway.start()
    za, mz = NationalSystem("ZA", fresh_amqp_url), NationalSystem("MZ", fresh_amqp_url)
    genuine = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    try:
        await za.connect(purge=True)
        await mz.connect(purge=True)
        message_id = "6f1c2b9e-4d3a-4c8b-9e7f-0a1b2c3d4e5f"
        request = samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")], message_id=message_id)
        forged = stranger("ZA", datetime.now(UTC)).sign(request)
        await za.send(forged, message_id=message_id)
        broken = genuine.sign(request).replace(b"BXK291", b"BXK29I")
        await za.send(broken, message_id=message_id)
        loud = samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")], message_id=message_id.upper())
        await za.send(genuine.sign(loud), message_id=message_id.upper())
        answers = await za.receive(3, timeout=20)
        assert [(a.kind, a.find("Code")) for a in answers] == [
            ("Rejection", "CERTIFICATE_UNTRUSTED"),
            ("Rejection", "SIGNATURE_INVALID"),
            ("Receipt", None),
        ]
        [delivery] = await mz.receive(1, timeout=20)
        assert delivery.kind == "Delivery"
        again = samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")], message_id=message_id)
        await za.send(genuine.sign(again), message_id=message_id)
        [repeat] = await za.receive(1, timeout=20)
        assert (repeat.kind, repeat.message_id) == ("Receipt", answers[2].message_id)  # the same MessageId, lower case
        assert await mz.receive(1, timeout=1) == []
    finally:
        await za.close()
        await mz.close()
        await gateway.stop()
