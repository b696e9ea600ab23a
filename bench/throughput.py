"""Throughput and latency of `tracegate serve` beside the broker's own limit, measured in the same run.

null relay  the same topology, message sizes and confirms; a trivial consumer takes each inbound message,
            publishes two outbound ones of the sizes the switch sends for it (a Delivery and a Receipt, measured
            in-process first) and acks after the confirms; no XML, crypto or database work. This is the limit on
            this machine.
tracegate   signed ~4 KB trace requests from several states: sustained throughput with 16 requests in flight
            (closed loop, --seconds long), and end-to-end latency (publish by the requesting state until the
            destination receives its Delivery) at a fixed offered load and at saturation.
stages      per-stage CPU costs from a profile of the pipeline on the same messages (in-process).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika

from bench.wire import OnMessage, consume_outbound, publish, serve_env, start_serve, until_declared
from gateway.core.wire_names import INBOUND_EXCHANGE, outbound_queue
from gateway.dev import samples
from gateway.dev.pki import DevPki, create_dev_pki
from gateway.xml.signatures import Signer

STATES = ("AT", "BR", "KE", "MZ", "ZA")
PADDING = "Recovered with others in a cache; markings recorded in the seizure report. " * 12


def cpu_seconds(pid: int) -> float:
    """User plus system CPU a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int:
    """The RabbitMQ node's process (0 if it cannot be found)."""
    found = subprocess.run(["pgrep", "-f", "beam.smp"], capture_output=True, text=True, check=False).stdout.split()
    return int(found[0]) if found else 0


class CpuMeter:
    """CPU used by the gateway, the broker and this harness over a span, per message delivered in it."""

    def __init__(self, **pids: int) -> None:
        self.pids = pids
        self.start = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def per_message(self, delivered: int) -> dict[str, float]:
        """Milliseconds of CPU per delivered message, by process."""
        return {
            name: round((cpu_seconds(pid) - self.start[name]) * 1000 / max(delivered, 1), 3)
            for name, pid in self.pids.items()
        }


def _ctl(*args: str) -> None:
    """rabbitmqctl, quietly."""
    subprocess.run(["rabbitmqctl", *args], check=False, capture_output=True, timeout=120)


@dataclass
class Env:
    """A vhost, a PKI, a routing table and pre-signed requests."""

    url: str
    vhost: str
    tmp: Path
    pki: DevPki
    bodies: list[tuple[str, str, bytes]] = field(default_factory=list)  # (sender, message id, body)

    def close(self) -> None:
        """Delete the vhost."""
        _ctl("delete_vhost", self.vhost)


def make_env(tmp: Path, count: int) -> Env:
    """Everything a run needs, including `count` signed ~4 KB requests, each from a state to the next."""
    vhost = f"tracegate-bench-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", vhost)
    _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    pki = create_dev_pki(tmp / "pki", tmp / "certs", STATES, now=datetime.now(UTC) - timedelta(days=1))
    (tmp / "routing.toml").write_text("".join(f"[states.{s}]\n" for s in STATES))
    env = Env(f"amqp://guest:guest@127.0.0.1:5672/{vhost}", vhost, tmp, pki)
    env.bodies.extend(signed_requests(pki, count))
    return env


Firearm = Callable[[int], tuple[str, str]]  # the i-th request's (serial number, make)


def signed_requests(pki: DevPki, count: int, *, firearm: Firearm | None = None) -> list[tuple[str, str, bytes]]:
    """`count` signed ~4 KB requests (sender, message id, body), each from a state to the next, with fresh message
    ids; the i-th names `firearm(i)`'s serial number and make (by default B<i>, a Glock)."""
    signers = {s: Signer.from_files(pki.key_path(s), pki.cert_path(s)) for s in STATES}
    bodies = []
    for i in range(count):
        sender, destination = STATES[i % 5], STATES[(i + 1) % 5]
        message_id = str(uuid.uuid4())
        serial, make = firearm(i) if firearm is not None else (f"B{i:07d}", "Glock")
        root = samples.trace_request(
            sender,
            exports=[(sender, destination, "2019-06-14")],
            message_id=message_id,
            serial=serial,
            make=make,
            notes=PADDING,
        )
        bodies.append((sender, message_id, signers[sender].sign(root)))
    return bodies


class Probe:
    """Publishes requests and times each until its Delivery reaches the destination."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent_at: dict[str, float] = {}
        self.latency: dict[str, float] = {}
        self.arrived: dict[str, asyncio.Event] = {}
        self._connection: Any = None
        self._channel: Any = None

    async def start(self, delivery_key: Callable[[aio_pika.abc.AbstractIncomingMessage], str]) -> None:
        """Connect and consume every outbound queue (receipts are drained, deliveries timed)."""
        self._connection = await aio_pika.connect(self.url)
        self._channel = await self._connection.channel(publisher_confirms=True)

        await consume_outbound(self._connection, STATES, self.timing(delivery_key))

    def timing(self, delivery_key: Callable[[aio_pika.abc.AbstractIncomingMessage], str]) -> Callable[[str], OnMessage]:
        """A consumer for each outbound queue: a Delivery (as `delivery_key` names it) is timed, all are acked."""

        def timing(_state: str) -> OnMessage:
            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                key = delivery_key(message)
                if key and key in self.sent_at and key not in self.latency:
                    self.latency[key] = time.perf_counter() - self.sent_at[key]
                    self.arrived.setdefault(key, asyncio.Event()).set()
                await message.ack()

            return on_message

        return timing

    async def publish(self, sender: str, message_id: str, body: bytes) -> None:
        """Publish one request with a confirm."""
        self.sent_at[message_id] = time.perf_counter()
        await publish(self._channel, sender, body, message_id)

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()


async def closed_loop(probe: Probe, bodies: list[tuple[str, str, bytes]], in_flight: int, seconds: float) -> float:
    """Keep `in_flight` requests outstanding for `seconds`; returns deliveries per second.

    A request is published as soon as a slot frees, without waiting for the confirm of the one before: the
    states publish independently of each other."""
    window = asyncio.Semaphore(in_flight)
    started = time.perf_counter()
    position = 0

    async def waiter(key: str) -> None:
        await probe.arrived.setdefault(key, asyncio.Event()).wait()
        window.release()

    waiters = []
    publishes = []
    while time.perf_counter() - started < seconds and position < len(bodies):
        await window.acquire()
        sender, key, body = bodies[position]
        position += 1
        publishes.append(asyncio.create_task(probe.publish(sender, key, body)))
        waiters.append(asyncio.create_task(waiter(key)))
    elapsed = time.perf_counter() - started
    done = sum(1 for _, key, _ in bodies[:position] if key in probe.latency)
    for task in waiters:
        task.cancel()
    await asyncio.gather(*publishes)  # every publish confirmed (a refused one fails the run)
    return done / elapsed


async def open_loop(probe: Probe, bodies: list[tuple[str, str, bytes]], rate: float, seconds: float) -> list[float]:
    """Offer `rate` requests/s for `seconds`; returns the latencies (ms) of those delivered within 10 s after."""
    count = min(len(bodies), int(rate * seconds))
    chosen = bodies[:count]
    started = time.perf_counter()
    publishes = []
    for i, (sender, key, body) in enumerate(chosen):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        publishes.append(asyncio.create_task(probe.publish(sender, key, body)))  # on time, whatever the confirms
    await asyncio.gather(*publishes)

    async def every_delivery() -> None:  # these requests' own Deliveries (late ones of the saturation run don't count)
        for _, key, _ in chosen:
            await probe.arrived.setdefault(key, asyncio.Event()).wait()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(every_delivery(), timeout=10)
    return [probe.latency[key] * 1000 for _, key, _ in chosen if key in probe.latency]


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


_TRACE_ID = re.compile(rb"<(?:[\w.-]+:)?TraceId>([^<]+)</")


def _trace_of_delivery(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """The request a Delivery carries (its TraceId, in the Header before the base64 payload, is the request's
    MessageId). Found in the bytes: the harness spends on each Delivery no more than the null relay's probe
    spends reading a header (parsing 7 KB of XML here cost the harness, and so the machine, ~0.1 ms a message)."""
    if message.type != "Delivery":
        return ""
    found = _TRACE_ID.search(message.body)
    return found.group(1).decode() if found else ""


async def run_tracegate(
    env: Env, db: str, seconds: float, rate: float, *, database: tuple[str, str] | None = None
) -> dict[str, Any]:
    """Serve, then saturation (16 in flight) and a fixed offered load; figures for tracegate. `database`: the (URL,
    PostgreSQL schema) to serve on, already holding data (by default a fresh one)."""
    url = (
        f"sqlite+aiosqlite:///{env.tmp / 'bench.db'}"
        if db == "sqlite"
        else ("postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    )
    schema = f"bench_{uuid.uuid4().hex[:8]}" if db != "sqlite" else ""
    if database is not None:
        url, schema = database
    log = env.tmp / "serve.log"
    process = start_serve(serve_env(env.tmp, env.url, env.pki, database_url=url, schema=schema), log)
    probe = Probe(env.url)
    try:
        await until_declared(env.url)
        await probe.start(_trace_of_delivery)
        half = len(env.bodies) // 2
        meter = CpuMeter(tracegate=process.pid, broker=broker_pid(), harness=os.getpid())
        saturated = await closed_loop(probe, env.bodies[:half], 16, seconds)
        at_saturation = [v * 1000 for v in probe.latency.values()]
        cpu = meter.per_message(len(at_saturation))
        fixed = await open_loop(probe, env.bodies[half:], rate, min(seconds, 10))
        return {
            "tracegate_msgs_per_s": saturated,
            "p50_ms_at_saturation": percentile(at_saturation, 50),
            "p99_ms_at_saturation": percentile(at_saturation, 99),
            "p50_ms_at_200": percentile(fixed, 50),
            "p99_ms_at_200": percentile(fixed, 99),
            "delivered_at_200": len(fixed),
            "offered_at_200": int(rate * min(seconds, 10)),
            "offered_rate": rate,  # the fixed load's rate (200 unless --rate says otherwise; the keys keep "200")
            "cpu_ms_per_message": cpu,
        }
    finally:
        await probe.close()
        process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=60)


async def run_null_relay(env: Env, seconds: float, rate: float) -> dict[str, Any]:
    """The trivial relay on the same topology: deliveries per second with 16 in flight, its CPU per message, and
    its latency at saturation and at the fixed offered load (the floor the broker alone sets on this machine)."""
    connection = await aio_pika.connect(env.url)
    channel = await connection.channel()
    publish = await connection.channel(publisher_confirms=True)
    exchange = await channel.declare_exchange(INBOUND_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    inbound = await channel.declare_queue("itrace.gateway.inbound", durable=True)
    for state in STATES:
        await inbound.bind(exchange, routing_key=state)
        await channel.declare_queue(outbound_queue(state), durable=True)
    await channel.set_qos(prefetch_count=32)
    from bench.stages import outbound_sizes

    sizes = await outbound_sizes(env)  # what the switch sends for these requests, in bytes
    delivery_size, receipt_size = sizes["Delivery"], sizes["Receipt"]

    def sized(body: bytes, size: int) -> bytes:
        return (body * (size // max(len(body), 1) + 1))[:size]

    async def relay(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        sender = STATES.index(message.routing_key or "ZA")
        out = aio_pika.Message(
            sized(message.body, delivery_size),
            message_id=str(uuid.uuid4()),
            type="Delivery",
            headers={"request": message.message_id or ""},
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        receipt = aio_pika.Message(
            sized(message.body, receipt_size), type="Receipt", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await asyncio.gather(
            publish.default_exchange.publish(out, routing_key=outbound_queue(STATES[(sender + 1) % 5])),
            publish.default_exchange.publish(receipt, routing_key=outbound_queue(message.routing_key or "")),
        )
        await message.ack()

    await inbound.consume(relay)
    probe = Probe(env.url)
    await probe.start(lambda message: str((message.headers or {}).get("request", "")))
    bodies = [(sender, str(uuid.uuid4()), body) for _ in range(40) for sender, _, body in env.bodies[:500]]
    try:
        meter = CpuMeter(broker=broker_pid(), relay_and_harness=os.getpid())
        saturated = await closed_loop(probe, bodies[: len(bodies) // 2], 16, seconds)
        at_saturation = [v * 1000 for v in probe.latency.values()]
        cpu = meter.per_message(len(at_saturation))
        fixed = await open_loop(probe, bodies[len(bodies) // 2 :], rate, min(seconds, 10))
        return {
            "null_relay_msgs_per_s": saturated,
            "null_relay_cpu_ms_per_message": cpu,
            "null_relay_p50_ms_at_saturation": percentile(at_saturation, 50),
            "null_relay_p99_ms_at_saturation": percentile(at_saturation, 99),
            "null_relay_p50_ms_at_200": percentile(fixed, 50),
            "null_relay_p99_ms_at_200": percentile(fixed, 99),
            "outbound_bytes": sizes,
        }
    finally:
        await probe.close()
        await connection.close()


async def profile_stages(env: Env, count: int = 300) -> dict[str, float]:
    """Per-stage CPU cost (ms per message) from a cProfile of the pipeline on `count` of the same requests."""
    from bench.stages import profile

    return await profile(env, count)


async def main(
    seconds: float = 20.0, rate: float = 200.0, db: str = "sqlite", *, tracegate_first: bool = False
) -> dict[str, Any]:
    """The whole harness; prints a table and returns the figures. The machine's speed drifts over minutes, so
    repeated runs alternate which of the pair goes first (`tracegate_first`)."""
    with tempfile.TemporaryDirectory() as tmp:
        estimate = int(seconds * 400 + rate * min(seconds, 10)) + 600
        env = make_env(Path(tmp), estimate)
        second = Env(env.url.replace(env.vhost, env.vhost + "-g"), env.vhost + "-g", env.tmp, env.pki, env.bodies)
        _ctl("add_vhost", second.vhost)
        _ctl("set_permissions", "-p", second.vhost, "guest", ".*", ".*", ".*")
        try:
            if tracegate_first:
                figures = await run_tracegate(second, db, seconds, rate)
                null = await run_null_relay(env, seconds, rate)
            else:
                null = await run_null_relay(env, seconds, rate)
                figures = await run_tracegate(second, db, seconds, rate)
            stages = await profile_stages(second)
        finally:
            env.close()
            second.close()
    return {
        **null,
        **figures,
        "ratio": figures["tracegate_msgs_per_s"] / null["null_relay_msgs_per_s"],
        "db": db,
        "seconds": seconds,
        "first": "tracegate" if tracegate_first else "null relay",
        "stages_ms_per_message": stages,
        "body_bytes": int(statistics.mean(len(b) for _, _, b in env.bodies[:50])),
    }
