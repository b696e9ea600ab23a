"""`tracegate topology` on the real RabbitMQ: one user per state, and what the broker then refuses each of them.

The module makes its own vhost and users (a unique prefix per run) and deletes them afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aiormq.exceptions import ChannelAccessRefused, ChannelPreconditionFailed
from click.testing import CliRunner
from lxml import etree
from sqlalchemy import select

from gateway.adapters.amqp import (
    DEAD_LETTER_EXCHANGE,
    INBOUND_EXCHANGE,
    INBOUND_QUEUE,
    RETRIED_USER_HEADER,
    AmqpBroker,
    outbound_queue,
)
from gateway.adapters.broker_users import password_file, plan
from gateway.app import Gateway
from gateway.cli.main import cli
from gateway.core.effects import Outcome
from gateway.core.ports import Inbound
from gateway.dev import samples
from gateway.dev.npc import header_message_id
from gateway.dev.pki import DevPki
from gateway.routing.table import RoutingTable, load_table, parse_table
from gateway.settings import Settings
from gateway.store import inbound
from gateway.xml.signatures import Signer

AMQP_BASE = os.environ.get("TRACEGATE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")
TABLE = """
[states.ZA]
[states.MZ]
[states.KE]
status = "suspended"
[states.LS]
delegate = "ZA"
"""
SENDERS = ("KE", "MZ", "ZA")  # LS delegates to ZA: it runs no national system and gets no user


def ctl(*args: str, stdin: str | None = None) -> str:
    """Run rabbitmqctl (no shell) and return its standard output; fail the test if it fails."""
    path = shutil.which("rabbitmqctl")
    assert path, "rabbitmqctl is needed for the broker-user tests"
    done = subprocess.run([path, *args], input=stdin, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, f"rabbitmqctl {args[0]}: {done.stderr}"
    return done.stdout


def _users() -> list[dict[str, object]]:
    """Every broker user with its tags."""
    rows: list[dict[str, object]] = json.loads(ctl("-q", "list_users", "--formatter", "json"))
    return rows


def amqp_url(user: str, password: str, vhost: str) -> str:
    """An AMQP URL for `user` on `vhost` of the test broker."""
    host = urlsplit(AMQP_BASE).netloc.rpartition("@")[2]
    return f"amqp://{quote(user, safe='')}:{quote(password, safe='')}@{host}/{quote(vhost, safe='')}"


@dataclass(frozen=True)
class Setup:
    """This module's vhost, user prefix, password directory, settings file and the gateway's URL."""

    vhost: str
    prefix: str
    secrets_dir: Path
    config: Path
    gateway_url: str
    table: RoutingTable

    def user(self, state: str) -> str:
        """The broker user of a state."""
        return f"{self.prefix}{state}"

    def state_url(self, state: str) -> str:
        """An AMQP URL that connects as the state's own user, with the password `apply` stored for it."""
        return amqp_url(self.user(state), password_file(self.secrets_dir, state).read_text().strip(), self.vhost)

    def topology(self, *args: str, secrets_dir: Path | None = None) -> str:
        """Run `tracegate topology` with this module's settings (and password files); returns its output."""
        env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TRACEGATE_")}
        options = ["--secrets-dir", str(secrets_dir or self.secrets_dir), "--prefix", self.prefix, *args]
        result = CliRunner().invoke(cli, ["--config", str(self.config), "topology", *options], env=env)
        assert result.exit_code == 0, result.output
        return result.output


async def declare(url: str, states: list[str]) -> None:
    """The gateway's own declare step, as `tracegate serve` does it."""
    broker = AmqpBroker(url)
    await broker.connect()
    try:
        await broker.declare_topology(states)
    finally:
        await broker.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    """A vhost, a gateway user and `tracegate topology --apply` for a small table; all removed afterwards."""
    run = uuid.uuid4().hex[:8]
    vhost, prefix = f"tracegate-topology-{run}", f"tgtest-{run}-"
    base = tmp_path_factory.mktemp("topology")
    (base / "routing.toml").write_text(TABLE)
    gateway_password = secrets.token_urlsafe(16)
    ctl("add_vhost", vhost)
    try:
        ctl("add_user", f"{prefix}gateway", stdin=gateway_password + "\n")
        gateway_url = amqp_url(f"{prefix}gateway", gateway_password, vhost)
        table = load_table(base / "routing.toml")
        made = Setup(vhost, prefix, base / "secrets", base / "tracegate.toml", gateway_url, table)
        made.config.write_text(
            f'[tracegate]\nbroker_url = "{made.gateway_url}"\nrouting_table = "{base / "routing.toml"}"\n'
        )
        made.topology("--apply")
        asyncio.run(declare(made.gateway_url, sorted(made.table.states)))
        yield made
    finally:
        for row in _users():
            if str(row["user"]).startswith(prefix):
                ctl("delete_user", str(row["user"]))
        ctl("delete_vhost", vhost)


@asynccontextmanager
async def channel_as(url: str) -> AsyncIterator[AbstractChannel]:
    """A publisher-confirming channel on a connection of its own, closed afterwards."""
    connection = await aio_pika.connect(url)
    try:
        yield await connection.channel(publisher_confirms=True)
    finally:
        await connection.close()


def message(tag: str, *, user_id: str | None = None) -> aio_pika.Message:
    """A persistent test message named `tag`, optionally carrying an AMQP user_id."""
    return aio_pika.Message(
        b"<probe/>", message_id=tag, user_id=user_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
    )


def signed_message(body: bytes) -> aio_pika.Message:
    """A signed message as a national system publishes it, but without user_id."""
    return aio_pika.Message(body, message_id=header_message_id(body), content_type="application/xml")


async def take(queue: AbstractQueue, message_id: str, timeout: float = 10.0) -> AbstractIncomingMessage:
    """Consume from `queue` until the message `message_id` arrives (others are acked and dropped)."""
    async with asyncio.timeout(timeout), queue.iterator() as messages:
        async for got in messages:
            await got.ack()
            if got.message_id == message_id:
                return got
    raise AssertionError(f"{message_id} never arrived")


async def gateway_receives(setup: Setup, message_id: str, timeout: float = 10.0) -> AbstractIncomingMessage:
    """The message `message_id` as the gateway's inbound queues hold it (one queue per state, `state_queue`; others
    met on the way are taken and dropped)."""
    from gateway.adapters.amqp import state_queue  # imported here: this helper is the one part of the file adapted

    async with channel_as(setup.gateway_url) as channel:
        queues = [await channel.declare_queue(state_queue(s), passive=True) for s in sorted(setup.table.states)]
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            for queue in queues:
                got = await queue.get(no_ack=True, fail=False)
                if got is not None and got.message_id == message_id:
                    assert INBOUND_QUEUE + "." + (got.routing_key or "") == queue.name  # its routing key's queue
                    return got
            await asyncio.sleep(0.02)
    raise AssertionError(f"{message_id} never arrived")


def test_plan_names_one_user_per_sending_state_and_no_password(setup: Setup) -> None:
    """The plan has a user per state without a delegate, exact per-state patterns, and no password anywhere."""
    table = parse_table({"states": {"ZA": {"queue": "za.in-box"}, "LS": {"delegate": "ZA"}}}, where="test")
    commands = plan(table, "v", "gw", prefix="p-")
    assert [c.args for c in commands] == [
        ("add_vhost", "v"),
        (
            "set_permissions",
            "-p",
            "v",
            "gw",
            r"^(itrace\..*|za\.in\-box)$",
            r"^(itrace\..*|amq\.default|za\.in\-box)$",
            r"^(itrace\..*|za\.in\-box)$",
        ),
        ("add_user", "p-ZA"),
        ("set_permissions", "-p", "v", "p-ZA", "^$", r"^itrace\.inbound$", r"^za\.in\-box$"),
    ]
    printed = setup.topology("--print")
    for state in SENDERS:
        assert password_file(setup.secrets_dir, state).read_text().strip() not in printed
        assert f"add_user {setup.user(state)}  # password on standard input, from " in printed


def test_applied_permissions_are_the_plan(setup: Setup) -> None:
    """Each state user may configure nothing, write itrace.inbound and read its own queue; none has tags."""
    rows = json.loads(ctl("-q", "list_permissions", "-p", setup.vhost, "--formatter", "json"))
    granted = {r["user"]: (r["configure"], r["write"], r["read"]) for r in rows}
    expected = {setup.user(s): ("^$", r"^itrace\.inbound$", rf"^itrace\.outbound\.{s}$") for s in SENDERS}
    expected[f"{setup.prefix}gateway"] = (r"^itrace\.", r"^(itrace\..*|amq\.default)$", r"^itrace\.")
    assert granted == expected
    tags = {r["user"]: r["tags"] for r in _users() if str(r["user"]).startswith(setup.prefix)}
    assert tags == {u: [] for u in expected}
    assert json.loads(ctl("-q", "list_topic_permissions", "-p", setup.vhost, "--formatter", "json")) == []


def test_password_files_are_private(setup: Setup) -> None:
    """Every generated password is in <CC>.password, mode 0600, in a 0700 directory."""
    assert stat.S_IMODE(setup.secrets_dir.stat().st_mode) == 0o700
    for state in SENDERS:
        path = password_file(setup.secrets_dir, state)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_text().strip()) >= 40
    assert not password_file(setup.secrets_dir, "LS").exists()


def test_applying_twice_changes_nothing(setup: Setup) -> None:
    """A second --apply keeps users, passwords and permissions, and prints no password."""
    before_files = {s: password_file(setup.secrets_dir, s).read_text() for s in SENDERS}
    before = ctl("-q", "list_permissions", "-p", setup.vhost, "--formatter", "json")
    output = setup.topology("--apply")
    assert output.count("exists; password unchanged, matches") == len(SENDERS)
    assert all(p.strip() not in output for p in before_files.values())
    assert {s: password_file(setup.secrets_dir, s).read_text() for s in SENDERS} == before_files
    assert ctl("-q", "list_permissions", "-p", setup.vhost, "--formatter", "json") == before
    for state in SENDERS:
        ctl("authenticate_user", setup.user(state), stdin=before_files[state])


def test_existing_users_keep_their_passwords(setup: Setup, tmp_path: Path) -> None:
    """Applying with other password files changes no password and warns where a file does not open the user."""
    other = tmp_path / "other-secrets"
    other.mkdir()
    password_file(other, "KE").write_text("not-the-password\n")
    output = setup.topology("--apply", secrets_dir=other)
    assert f"WARNING: user {setup.user('KE')} exists but" in output
    assert output.count("password unchanged (no file") == 2
    assert sorted(p.name for p in other.iterdir()) == ["KE.password"]
    for state in SENDERS:
        ctl("authenticate_user", setup.user(state), stdin=password_file(setup.secrets_dir, state).read_text())


async def test_gateway_user_declares_the_topology_and_feeds_a_state_queue(setup: Setup) -> None:
    """The gateway's user re-declares the topology and publishes to ZA's queue; ZA consumes it."""
    broker = AmqpBroker(setup.gateway_url)
    await broker.connect()
    try:
        await broker.declare_topology(sorted(setup.table.states))
        await broker.publish(outbound_queue("ZA"), b"<probe/>", message_id="to-za", kind="Probe")
    finally:
        await broker.close()
    async with channel_as(setup.state_url("ZA")) as channel:
        queue = await channel.declare_queue(outbound_queue("ZA"), passive=True)
        assert (await take(queue, "to-za")).body == b"<probe/>"


async def test_state_publishes_as_itself(setup: Setup) -> None:
    """ZA's user publishes to itrace.inbound with its own user_id; the gateway's queue gets it under that user."""
    async with channel_as(setup.state_url("ZA")) as channel:
        exchange = await channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
        await exchange.publish(message("as-za", user_id=setup.user("ZA")), routing_key="ZA")
    got = await gateway_receives(setup, "as-za")
    assert got.user_id == setup.user("ZA") and got.routing_key == "ZA"


async def test_broker_refuses_another_states_user_id(setup: Setup) -> None:
    """ZA's user publishing with MZ's user_id closes the channel with PRECONDITION_FAILED."""
    async with channel_as(setup.state_url("ZA")) as channel:
        exchange = await channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
        with pytest.raises(ChannelPreconditionFailed, match="user_id"):
            await exchange.publish(message("as-mz", user_id=setup.user("MZ")), routing_key="MZ")


async def _ignore(message: AbstractIncomingMessage) -> None:
    """A consumer callback that does nothing."""


async def _consume(queue: AbstractQueue) -> None:
    """Start a consumer on `queue`."""
    await queue.consume(_ignore)


async def _get(queue: AbstractQueue) -> None:
    """basic.get one message from `queue`."""
    await queue.get(fail=False)


async def _purge(queue: AbstractQueue) -> None:
    """Purge `queue`."""
    await queue.purge()


async def test_broker_refuses_another_states_queue(setup: Setup) -> None:
    """ZA's user may not consume, get from or purge MZ's queue: ACCESS_REFUSED each time."""
    for attempt in (_consume, _get, _purge):
        async with channel_as(setup.state_url("ZA")) as channel:
            queue = await channel.declare_queue(outbound_queue("MZ"), passive=True)  # passive: no permission needed
            with pytest.raises(ChannelAccessRefused, match=r"itrace\.outbound\.MZ"):
                await attempt(queue)


async def _declare_queue(channel: AbstractChannel) -> None:
    """Declare a durable queue of the topology's kind."""
    await channel.declare_queue("itrace.outbound.XX", durable=True)


async def _redeclare_own_queue(channel: AbstractChannel) -> None:
    """Declare the state's own queue again, non-passively, exactly as the gateway declared it."""
    await channel.declare_queue(outbound_queue("ZA"), durable=True, arguments={"x-queue-type": "classic"})


async def _declare_private_queue(channel: AbstractChannel) -> None:
    """Declare a server-named exclusive queue (as an eavesdropper would)."""
    await channel.declare_queue(exclusive=True)


async def _declare_exchange(channel: AbstractChannel) -> None:
    """Declare an exchange."""
    await channel.declare_exchange("itrace.sneaky", aio_pika.ExchangeType.FANOUT)


async def _bind_own_queue(channel: AbstractChannel) -> None:
    """Bind the state's own queue to itrace.inbound under another state's key (to read what MZ sends)."""
    own = await channel.declare_queue(outbound_queue("ZA"), passive=True)
    await own.bind(INBOUND_EXCHANGE, routing_key="MZ")


async def _delete_own_queue(channel: AbstractChannel) -> None:
    """Delete the state's own queue."""
    await channel.queue_delete(outbound_queue("ZA"))


async def test_broker_refuses_declaring_binding_and_deleting(setup: Setup) -> None:
    """A state's user cannot declare (even its own queue again), bind to itrace.inbound, or delete its queue."""
    for attempt in (
        _declare_queue,
        _redeclare_own_queue,
        _declare_private_queue,
        _declare_exchange,
        _bind_own_queue,
        _delete_own_queue,
    ):
        async with channel_as(setup.state_url("ZA")) as channel:
            with pytest.raises(ChannelAccessRefused):
                await attempt(channel)


async def test_broker_refuses_other_exchanges(setup: Setup) -> None:
    """A state's user cannot publish straight to a queue (default exchange) nor to the dead-letter exchange."""
    for exchange_name in ("", DEAD_LETTER_EXCHANGE):
        async with channel_as(setup.state_url("ZA")) as channel:
            exchange = await channel.get_exchange(exchange_name, ensure=False) if exchange_name else None
            target = exchange or channel.default_exchange
            with pytest.raises(ChannelAccessRefused):
                await target.publish(message("elsewhere", user_id=setup.user("ZA")), routing_key=outbound_queue("MZ"))


async def test_direct_exchange_does_not_confine_routing_keys(setup: Setup) -> None:
    """On direct itrace.inbound ZA may use MZ's routing key, but the message still carries ZA's user_id."""
    async with channel_as(setup.state_url("ZA")) as channel:
        exchange = await channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
        await exchange.publish(message("za-under-mz", user_id=setup.user("ZA")), routing_key="MZ")
        await exchange.publish(message("za-no-user-id"), routing_key="MZ")
    got = await gateway_receives(setup, "za-under-mz")
    inbound = Inbound(body=got.body, routing_key=got.routing_key or "", user_id=got.user_id)
    assert got.routing_key == "MZ" and inbound.transport_sender == setup.user("ZA")
    unnamed = await gateway_receives(setup, "za-no-user-id")
    assert unnamed.user_id is None  # the broker lets user_id be omitted: `require_user_id` is the gateway's


async def test_topic_permissions_bind_only_topic_exchanges(setup: Setup) -> None:
    """set_topic_permissions write '^ZA$' refuses key MZ on a topic exchange and is ignored on itrace.inbound."""
    probe, password = f"{setup.prefix}probe", secrets.token_urlsafe(16)
    ctl("add_user", probe, stdin=password + "\n")
    ctl("set_permissions", "-p", setup.vhost, probe, r"^itrace\.probe$", ".*", "^$")
    for exchange_name in ("itrace.probe", INBOUND_EXCHANGE):
        ctl("set_topic_permissions", "-p", setup.vhost, probe, exchange_name, "^ZA$", "^$")
    async with channel_as(amqp_url(probe, password, setup.vhost)) as channel:
        topic = await channel.declare_exchange("itrace.probe", aio_pika.ExchangeType.TOPIC, auto_delete=True)
        await topic.publish(message("topic-za"), routing_key="ZA")
        with pytest.raises(ChannelAccessRefused, match="topic"):
            await topic.publish(message("topic-mz"), routing_key="MZ")
    async with channel_as(amqp_url(probe, password, setup.vhost)) as channel:
        direct = await channel.get_exchange(INBOUND_EXCHANGE, ensure=False)
        await direct.publish(message("direct-mz"), routing_key="MZ")
    assert (await gateway_receives(setup, "direct-mz")).routing_key == "MZ"


def gateway_settings(setup: Setup, pki: DevPki, tmp_path: Path) -> Settings:
    """The gateway on this module's vhost as its own broker user, with the default settings otherwise."""
    settings = dataclasses.replace(
        Settings(),
        broker_url=setup.gateway_url,
        broker_user_prefix=setup.prefix,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
        routing_table=tmp_path / "routing.toml",
        trust_dir=pki.trust_dir,
        gateway_key=pki.gateway_key_path,
        gateway_cert=pki.gateway_cert_path,
    )
    settings.routing_table.write_text(TABLE)
    return settings


async def test_gateway_knows_each_state_by_its_broker_user(setup: Setup, pki: DevPki, tmp_path: Path) -> None:
    """Through the per-state users: ZA's own user gets a Receipt; MZ's user claiming to be ZA is SENDER_MISMATCH,
    answered to MZ; a message without user_id is refused (user ids are required by default) and answered to no
    one, since its routing key is only a claim."""
    gateway = Gateway(gateway_settings(setup, pki, tmp_path))
    await gateway.start()
    za = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    request = za.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
    try:
        async with channel_as(setup.state_url("ZA")) as channel:
            exchange = await channel.get_exchange("itrace.inbound", ensure=False)
            await exchange.publish(
                aio_pika.Message(request, user_id=setup.user("ZA"), message_id=header_message_id(request)),
                routing_key="ZA",
            )
            await exchange.publish(
                signed_message(za.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))),
                routing_key="ZA",
            )
            queue = await channel.declare_queue("itrace.outbound.ZA", passive=True)
            assert await _next(queue) == "Receipt"
            with pytest.raises(AssertionError, match="nothing arrived"):  # refused, recorded, answered to no one
                await _next(queue, timeout=2)
        [unnamed] = await gateway.store.fetch(select(inbound.c.code).where(inbound.c.outcome == "refused"))
        assert unnamed.code == "SENDER_MISMATCH"
        async with channel_as(setup.state_url("MZ")) as channel:
            exchange = await channel.get_exchange("itrace.inbound", ensure=False)
            forged = za.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
            await exchange.publish(
                aio_pika.Message(forged, user_id=setup.user("MZ"), message_id=header_message_id(forged)),
                routing_key="ZA",
            )
            queue = await channel.declare_queue("itrace.outbound.MZ", passive=True)
            kinds = [await _next(queue) for _ in range(2)]
        assert sorted(kinds) == ["Delivery", "Rejection:SENDER_MISMATCH"]  # ZA's genuine request, then the forgery
    finally:
        await gateway.stop()


async def test_a_retried_dead_letter_keeps_its_sender(setup: Setup, pki: DevPki, tmp_path: Path) -> None:
    """A message from ZA's own user that made the gateway fail is dead-lettered; `tracegate dead-letters retry`
    (run as the gateway's user) sends it back, and the gateway still takes it as ZA's (a Receipt to ZA, not
    SENDER_MISMATCH for a missing user_id). A state's user naming another sender in the retry header is not
    believed."""
    gateway = Gateway(gateway_settings(setup, pki, tmp_path))
    real_handle = gateway.pipeline.handle
    broken = True

    async def flaky(message: Inbound) -> Outcome:
        """The pipeline with a fault that strikes one message until it is 'fixed'."""
        if broken and b"POISON" in message.body:
            raise RuntimeError("simulated defect")
        return await real_handle(message)

    gateway.pipeline.handle = flaky  # type: ignore[method-assign]
    await gateway.start()
    za = Signer.from_files(pki.key_path("ZA"), pki.cert_path("ZA"))
    try:
        async with channel_as(setup.state_url("ZA")) as channel:
            exchange = await channel.get_exchange("itrace.inbound", ensure=False)
            poison = za.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")], notes="POISON"))
            await exchange.publish(
                aio_pika.Message(poison, user_id=setup.user("ZA"), message_id=header_message_id(poison)),
                routing_key="ZA",
            )
            queue = await channel.declare_queue("itrace.outbound.ZA", passive=True)
            assert await _next(queue) == "Rejection:PROCESSING_FAILED"
            broken = False
            command = ["--config", str(setup.config), "dead-letters", "retry", "--all"]
            retried = await asyncio.to_thread(CliRunner().invoke, cli, command)
            assert retried.exit_code == 0 and "1 message(s) retried" in retried.output, retried.output
            assert await _next(queue) == "Receipt"
        async with channel_as(setup.state_url("MZ")) as channel:
            exchange = await channel.get_exchange("itrace.inbound", ensure=False)
            claimed = za.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")]))
            claim = aio_pika.Message(
                claimed,
                message_id=header_message_id(claimed),
                user_id=setup.user("MZ"),
                headers={RETRIED_USER_HEADER: setup.user("ZA")},
            )
            await exchange.publish(claim, routing_key="ZA")
            queue = await channel.declare_queue("itrace.outbound.MZ", passive=True)
            kinds = [await _next(queue) for _ in range(2)]
        assert sorted(kinds) == ["Delivery", "Rejection:SENDER_MISMATCH"]  # the retried Delivery, then the claim
    finally:
        await gateway.stop()


async def _next(queue: AbstractQueue, timeout: float = 15.0) -> str:
    """The next message's type (with the code of a Rejection)."""
    got = await take_any(queue, timeout)
    root = etree.fromstring(got.body)
    kind = etree.QName(root).localname
    return f"{kind}:{root.findtext('{urn:itrace:1}Code')}" if kind == "Rejection" else kind


async def take_any(queue: AbstractQueue, timeout: float) -> AbstractIncomingMessage:
    """The next message in `queue`, acked."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue.name}")
