"""The contract's transport rules on the real RabbitMQ (section 2): `content_type` and `message_id`, where a
publisher sets them, must be what the contract says; and a refusal the switch cannot address to a proven sender
goes to no one's queue (it is recorded, and logged for the operator)."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path

import aio_pika
from sqlalchemy import select

from gateway.adapters.amqp import DEAD_LETTER_QUEUE, INBOUND_EXCHANGE, TRIAGE_QUEUE, AmqpBroker
from gateway.app import Gateway
from gateway.audit.replay import replay
from gateway.dev import samples
from gateway.dev.npc import NationalSystem, header_message_id
from gateway.dev.pki import DevPki
from gateway.pipeline.checks import LAPSED, MESSAGE_ID_DIFFERS, NO_USER_ID, WRONG_CONTENT_TYPE
from gateway.settings import Settings
from gateway.store import inbound
from gateway.xml.signatures import Signer

from .conftest import settings_for

TO_MZ = [("ZA", "MZ", "2019-06-14")]


async def _publish(url: str, body: bytes, routing_key: str, **properties: object) -> None:
    """Publish as a national system would, with exactly these AMQP properties."""
    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
        await exchange.publish(aio_pika.Message(body, **properties), routing_key=routing_key)  # type: ignore[arg-type]
    finally:
        await connection.close()


def _shared_user(pki: DevPki, routing_table: Path, url: str, tmp_path: Path) -> Settings:
    """A gateway on `url`'s vhost and its own SQLite file, where the states share the vhost's one broker user."""
    return dataclasses.replace(
        settings_for(pki, routing_table, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", None),
        broker_url=url,
        require_user_id=False,
    )


async def test_content_type_and_message_id_are_held_to_the_contract(
    pki: DevPki, routing_table: Path, fresh_amqp_url: str, tmp_path: Path
) -> None:
    """text/plain: MALFORMED_XML; a message_id other than Header/MessageId: SCHEMA_INVALID; no content_type with
    the message_id in upper case, or both as the contract says: accepted. (aio-pika fills in a random message_id
    when none is given, which is then refused: a national system must set it.)"""
    settings = _shared_user(pki, routing_table, fresh_amqp_url, tmp_path)
    gateway = Gateway(settings)
    await gateway.start()
    za = NationalSystem("ZA", fresh_amqp_url)
    signer = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    try:
        await za.connect(purge=True)
        for content_type, same_id in (("text/plain", True), ("application/xml", False), (None, True)):
            root = samples.trace_request("ZA", exports=TO_MZ)
            own = root.findtext("{urn:itrace:1}Header/{urn:itrace:1}MessageId") or ""
            message_id = own.upper() if same_id else str(uuid.uuid4())
            await _publish(fresh_amqp_url, signer.sign(root), "ZA", content_type=content_type, message_id=message_id)
        last = signer.sign(samples.trace_request("ZA", exports=TO_MZ))
        await _publish(fresh_amqp_url, last, "ZA", content_type="application/xml", message_id=header_message_id(last))
        answers = await za.receive(4, timeout=20)
        assert [(a.kind, a.find("Code")) for a in answers] == [
            ("Rejection", "MALFORMED_XML"),
            ("Rejection", "SCHEMA_INVALID"),
            ("Receipt", None),
            ("Receipt", None),
        ]
        assert [a.find("Detail") for a in answers[:2]] == [WRONG_CONTENT_TYPE, MESSAGE_ID_DIFFERS]
    finally:
        await za.close()
        await gateway.stop()


async def test_a_message_without_user_id_is_answered_to_no_one(
    pki: DevPki, routing_table: Path, fresh_amqp_url: str, tmp_path: Path
) -> None:
    """With user ids required (the default), a message without one under MZ's routing key is refused and recorded,
    but MZ's queue gets nothing: the routing key is only a claim, and answering it would let anyone fill another
    state's queue with Rejections."""
    settings = dataclasses.replace(
        settings_for(pki, routing_table, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", None), broker_url=fresh_amqp_url
    )
    assert settings.require_user_id
    gateway = Gateway(settings)
    await gateway.start()
    mz = NationalSystem("MZ", fresh_amqp_url)
    signer = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    try:
        await mz.connect(purge=True)
        for _ in range(3):
            await _publish(fresh_amqp_url, signer.sign(samples.trace_request("ZA", exports=TO_MZ)), "MZ")
        assert await mz.receive(1, timeout=3) == []
        rows = await gateway.store.fetch(select(inbound.c.sender, inbound.c.code, inbound.c.detail))
        assert [tuple(r) for r in rows] == [("MZ", "SENDER_MISMATCH", NO_USER_ID)] * 3
    finally:
        await mz.close()
        await gateway.stop()


async def test_a_message_whose_expiration_lapsed_in_the_queue_is_answered_stale(
    pki: DevPki, routing_table: Path, fresh_amqp_url: str, tmp_path: Path
) -> None:
    """ZA publishes one request with a 100 ms AMQP expiration and one without while the gateway is down; the first
    lapses in ZA's queue. Started, the gateway answers it STALE_MESSAGE with the reason (nothing lost in silence)
    and handles the other as usual; the message died of its expiration, so none is held in itrace.dead-letter,
    and replaying the audit log reproduces the refusal."""
    settings = _shared_user(pki, routing_table, fresh_amqp_url, tmp_path)
    declare = AmqpBroker(fresh_amqp_url)
    await declare.connect()
    await declare.declare_topology(["ZA", "MZ"])
    await declare.close()
    signer = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    lapsing = signer.sign(samples.trace_request("ZA", exports=TO_MZ))
    kept = signer.sign(samples.trace_request("ZA", exports=TO_MZ))
    for body, expiration in ((lapsing, 0.1), (kept, None)):
        await _publish(
            fresh_amqp_url,
            body,
            "ZA",
            content_type="application/xml",
            message_id=header_message_id(body),
            expiration=expiration,
        )
    await asyncio.sleep(1.0)
    gateway = Gateway(settings)
    za = NationalSystem("ZA", fresh_amqp_url)
    try:
        await za.connect()
        await gateway.start()
        answers = await za.receive(2, timeout=20)
        by_kind = {a.kind: a for a in answers}
        assert sorted(by_kind) == ["Receipt", "Rejection"]
        refusal = by_kind["Rejection"]
        assert (refusal.find("Code"), refusal.find("Detail")) == ("STALE_MESSAGE", LAPSED)
        assert refusal.find("RejectedMessageId") == header_message_id(lapsing)
        assert by_kind["Receipt"].find("AcceptedMessageId") == header_message_id(kept)
        assert (await replay(gateway.store, settings)).divergences == ()
    finally:
        await za.close()
        await gateway.stop()
    connection = await aio_pika.connect(fresh_amqp_url)
    try:
        channel = await connection.channel()
        for name in (DEAD_LETTER_QUEUE, TRIAGE_QUEUE):
            queue = await channel.declare_queue(name, passive=True)
            assert queue.declaration_result.message_count == 0, name
    finally:
        await connection.close()
