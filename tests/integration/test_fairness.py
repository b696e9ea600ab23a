"""Each state's requests wait in a queue of their own, consumed fairly, with a limit; on the real RabbitMQ."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import DeliveryError

from gateway.adapters.amqp import (
    DEAD_LETTER_EXCHANGE,
    INBOUND_EXCHANGE,
    INBOUND_QUEUE,
    AmqpBroker,
    outbound_queue,
    state_queue,
)
from gateway.app import Gateway
from gateway.core.errors import ConfigurationError
from gateway.dev import samples
from gateway.dev.pki import DevPki
from gateway.settings import Settings
from gateway.xml.signatures import Signer

from .conftest import settings_for

TABLE = "[states.ZA]\n[states.KE]\n[states.MZ]\n"
STATES = ["KE", "MZ", "ZA"]
BACKLOG = 2000


def _settings(pki: DevPki, url: str, tmp_path: Path) -> Settings:
    """A gateway on its own vhost and SQLite file; the states share the vhost's one broker user."""
    table = tmp_path / "routing.toml"
    table.write_text(TABLE)
    return dataclasses.replace(
        settings_for(pki, table, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}", None),
        broker_url=url,
        require_user_id=False,
    )


def _signed(signer: Signer, sender: str, count: int, tag: str) -> list[tuple[str, bytes]]:
    """`count` signed requests from `sender` (exports to MZ, or to KE from MZ): (message id, body)."""
    destination = "KE" if sender == "MZ" else "MZ"
    out = []
    for i in range(count):
        message_id = str(uuid.uuid4())
        root = samples.trace_request(
            sender, exports=[(sender, destination, "2019-06-14")], message_id=message_id, serial=f"{tag}{i:06d}"
        )
        out.append((message_id, signer.sign(root)))
    return out


async def _declare(url: str, states: list[str], **options: Any) -> None:
    """The gateway's declare step alone (no consumer), as `serve` does it."""
    broker = AmqpBroker(url, **options)
    await broker.connect()
    try:
        await broker.declare_topology(states)
    finally:
        await broker.close()


async def _publish(channel: aio_pika.abc.AbstractChannel, key: str, bodies: list[tuple[str, bytes]]) -> None:
    """Publish signed requests as state `key`, each confirmed."""
    exchange = await channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
    await asyncio.gather(
        *(
            exchange.publish(
                aio_pika.Message(body, message_id=mid, content_type="application/xml", delivery_mode=2),
                routing_key=key,
            )
            for mid, body in bodies
        )
    )


def _bindings(url: str) -> set[tuple[str, str]]:
    """(destination queue, routing key) of every binding from `itrace.inbound` in the URL's vhost."""
    vhost = unquote(urlsplit(url).path.lstrip("/"))
    done = subprocess.run(
        ["rabbitmqctl", "-q", "list_bindings", "-p", vhost, "source_name", "destination_name", "routing_key"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    rows = [line.split("\t") for line in done.stdout.splitlines() if line.startswith(INBOUND_EXCHANGE + "\t")]
    return {(row[1], row[2]) for row in rows}


async def test_a_quiet_state_is_answered_beside_another_states_backlog(
    pki: DevPki, fresh_amqp_url: str, tmp_path: Path
) -> None:
    """ZA has 2,000 valid requests queued before the gateway consumes; KE's one request, published after them, is
    answered (its Receipt arrives) while most of ZA's backlog is still waiting: KE's queue is served beside ZA's,
    not behind it (with one shared FIFO queue all 2,000 came first)."""
    await _declare(fresh_amqp_url, STATES)
    za = _signed(Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA")), "ZA", BACKLOG, "Z")
    [(ke_id, ke_body)] = _signed(Signer.from_files(pki.key_path("KE"), pki.cert_path("KE")), "KE", 1, "K")
    connection = await aio_pika.connect(fresh_amqp_url)
    gateway = Gateway(_settings(pki, fresh_amqp_url, tmp_path))
    try:
        channel = await connection.channel(publisher_confirms=True)
        await _publish(channel, "ZA", za)
        await _publish(channel, "KE", [(ke_id, ke_body)])
        order: list[str] = []  # the sender of each Receipt, in the order they arrived
        ke_answered = asyncio.Event()
        listen = await connection.channel()
        await listen.set_qos(prefetch_count=500)

        def receipts_of(state: str) -> object:
            async def on_message(message: AbstractIncomingMessage) -> None:
                if message.type == "Receipt":
                    order.append(state)
                    if state == "KE":
                        ke_answered.set()
                await message.ack()

            return on_message

        for state in ("ZA", "KE"):
            queue = await listen.declare_queue(outbound_queue(state), passive=True)
            await queue.consume(receipts_of(state))  # type: ignore[arg-type]
        await gateway.start()
        await asyncio.wait_for(ke_answered.wait(), timeout=120)
        before = order.index("KE")
        assert before < BACKLOG // 4, f"{before} of ZA's receipts came before KE's"
        waiting = await channel.declare_queue(state_queue("ZA"), passive=True)
        assert (waiting.declaration_result.message_count or 0) > BACKLOG // 2  # most of the backlog had not been served
    finally:
        await gateway.stop()
        await connection.close()


async def test_a_full_state_queue_refuses_that_states_publishes_only(pki: DevPki, fresh_amqp_url: str) -> None:
    """With a limit of 5 and no consumer, ZA's sixth publish is nacked (a publisher using confirms sees the
    refusal) while MZ's publish is still confirmed; redeclaring with another limit is a clear configuration
    error naming the queue."""
    await _declare(fresh_amqp_url, STATES, state_queue_limit=5)
    connection = await aio_pika.connect(fresh_amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
        for i in range(5):
            await exchange.publish(aio_pika.Message(b"<x/>", message_id=f"za-{i}"), routing_key="ZA")
        with pytest.raises(DeliveryError):
            await exchange.publish(aio_pika.Message(b"<x/>", message_id="za-6"), routing_key="ZA")
        await exchange.publish(aio_pika.Message(b"<x/>", message_id="mz-1"), routing_key="MZ")  # confirmed
        za = await channel.declare_queue(state_queue("ZA"), passive=True)
        mz = await channel.declare_queue(state_queue("MZ"), passive=True)
        assert (za.declaration_result.message_count, mz.declaration_result.message_count) == (5, 1)
    finally:
        await connection.close()
    with pytest.raises(ConfigurationError, match=r"itrace\.gateway\.inbound\.KE.*x-max-length=7.*delete_queue"):
        await _declare(fresh_amqp_url, STATES, state_queue_limit=7)


async def test_a_request_left_in_the_old_shared_queue_is_still_answered(
    pki: DevPki, fresh_amqp_url: str, tmp_path: Path
) -> None:
    """Upgrade: an earlier version's shared `itrace.gateway.inbound`, bound with every state's code, holds a
    request. The gateway unbinds the states from it (their own queues are bound first), consumes it, and answers
    the request; a request published afterwards goes to the state's own queue and is answered too."""
    signer = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    [old, new] = _signed(signer, "ZA", 2, "U")
    connection = await aio_pika.connect(fresh_amqp_url)
    gateway = Gateway(_settings(pki, fresh_amqp_url, tmp_path))
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(INBOUND_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
        shared = await channel.declare_queue(
            INBOUND_QUEUE, durable=True, arguments={"x-dead-letter-exchange": DEAD_LETTER_EXCHANGE}
        )
        for state in STATES:
            await shared.bind(exchange, routing_key=state)
        await _publish(channel, "ZA", [old])
        await gateway.start()
        bound = _bindings(fresh_amqp_url)
        assert {(state_queue(s), s) for s in STATES} <= bound
        assert not {(q, k) for q, k in bound if q == INBOUND_QUEUE}, bound
        await _publish(channel, "ZA", [new])
        outbound = await channel.declare_queue(outbound_queue("ZA"), passive=True)
        answered: set[str] = set()
        async with asyncio.timeout(30):
            while len(answered) < 2:
                got = await outbound.get(no_ack=True, fail=False)
                if got is None:
                    await asyncio.sleep(0.05)
                elif got.type == "Receipt":
                    assert b"delivered" in got.body
                    answered.add(got.message_id or "")
        left = await channel.declare_queue(INBOUND_QUEUE, passive=True)
        assert left.declaration_result.message_count == 0
    finally:
        await gateway.stop()
        await connection.close()
