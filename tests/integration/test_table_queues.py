"""A state whose routing-table entry names a queue of its own gets its messages there, on the real RabbitMQ."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aio_pika
import pytest
from aiormq.exceptions import ChannelNotFoundEntity

from gateway.app import Gateway
from gateway.dev import samples
from gateway.dev.npc import NationalSystem
from gateway.dev.pki import DevPki
from gateway.xml.signatures import Signer

from .conftest import settings_for

TABLE = """
[states.ZA]
[states.MZ]
queue = "npc.mz.inbox"
"""


async def test_a_state_with_a_queue_of_its_own_receives_there(pki: DevPki, fresh_amqp_url: str, tmp_path: Path) -> None:
    """`serve` declares the table's queue for MZ and delivers MZ's Delivery into it; the contract's default queue
    for MZ is not declared (nothing would read it)."""
    table = tmp_path / "routing.toml"
    table.write_text(TABLE)
    settings = dataclasses.replace(
        settings_for(pki, table, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", None),
        broker_url=fresh_amqp_url,
        require_user_id=False,  # the states share this vhost's one broker user
    )
    gateway = Gateway(settings)
    await gateway.start()
    za, mz = NationalSystem("ZA", fresh_amqp_url), NationalSystem("MZ", fresh_amqp_url, queue="npc.mz.inbox")
    try:
        await za.connect()
        await mz.connect()
        root = samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")])
        request_id = root.findtext("{urn:itrace:1}Header/{urn:itrace:1}MessageId")
        await za.send(Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA")).sign(root), message_id=request_id)
        [receipt] = await za.receive(1, timeout=20)
        [delivery] = await mz.receive(1, timeout=20)
        assert (receipt.kind, receipt.find("Status")) == ("Receipt", "delivered")
        assert (delivery.kind, delivery.find("Header/TraceId")) == ("Delivery", request_id)
        connection = await aio_pika.connect(fresh_amqp_url)
        try:
            channel = await connection.channel()
            with pytest.raises(ChannelNotFoundEntity, match=r"itrace\.outbound\.MZ"):
                await channel.declare_queue("itrace.outbound.MZ", passive=True)
        finally:
            await connection.close()
    finally:
        await za.close()
        await mz.close()
        await gateway.stop()
