"""Soak and chaos: thousands of signed requests through `tracegate serve` while it is killed, the broker restarts
and connections drop; then count what was lost, duplicated or unexpected (as RabbitMQ's Jepsen tests count).

  accepted                 requests the gateway answered with a Receipt
  delivered                requests whose destination received a Delivery
  lost                     requests confirmed by the broker that never reached their destination
  duplicated-with-new-id   requests delivered under two or more different Delivery MessageIds (a second effect)
  unexpected               messages nobody asked for: refusals of valid requests, deliveries of unknown requests
  redelivered-same-id      the same Delivery seen again (at-least-once on the wire; recipients drop these)
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
from lxml import etree

from bench.wire import publish, serve_env, start_serve, until_declared
from gateway.core.wire_names import outbound_queue
from gateway.dev import samples
from gateway.dev.pki import DevPki, create_dev_pki
from gateway.xml.signatures import Signer

STATES = ("AT", "BR", "KE", "MZ", "ZA")
T = "{urn:itrace:1}"


@dataclass
class Tally:
    """What every party saw."""

    sent: dict[str, str] = field(default_factory=dict)  # request MessageId → destination
    receipts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    deliveries: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # request → Delivery ids
    seen_delivery_ids: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unexpected: list[str] = field(default_factory=list)

    def figures(self) -> dict[str, int]:
        """The counts the run reports."""
        delivered = {r for r, ids in self.deliveries.items() if r in self.sent and ids}
        return {
            "sent": len(self.sent),
            "accepted": len([r for r in self.receipts if r in self.sent]),
            "delivered": len(delivered),
            "lost": len([r for r in self.sent if r not in delivered]),
            "duplicated_with_new_id": len([r for r, ids in self.deliveries.items() if len(ids) > 1]),
            "unexpected": len(self.unexpected),
            "redelivered_same_id": sum(n - 1 for n in self.seen_delivery_ids.values() if n > 1),
        }


def _rabbitmqctl(*args: str) -> bool:
    """Run rabbitmqctl, quietly; whether it succeeded."""
    try:
        return subprocess.run(["rabbitmqctl", *args], check=False, capture_output=True, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _restart_broker() -> None:
    """Stop and start the broker's application, making sure it is running again before returning."""
    _rabbitmqctl("stop_app")
    time.sleep(1)
    for _ in range(5):
        if _rabbitmqctl("start_app") and _rabbitmqctl("await_startup"):
            return
        time.sleep(2)
    raise RuntimeError("the broker did not come back after its restart")


class Gateway:
    """`tracegate serve` as a child process that can be killed and started again."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start serving (does not wait)."""
        self.process = start_serve(self.env, self.log)

    def kill(self) -> None:
        """SIGKILL."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait for the drain."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def _consume(state: str, url: str, tally: Tally, stop: asyncio.Event) -> None:
    """A national system reading its queue (robustly, acking what it has recorded)."""
    connection = await aio_pika.connect_robust(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=200)
    queue = await channel.declare_queue(outbound_queue(state), passive=True)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        root = etree.fromstring(message.body)
        kind = etree.QName(root).localname
        trace = root.findtext(f"{T}Header/{T}TraceId") or ""
        if kind == "Receipt":
            tally.receipts[root.findtext(f"{T}AcceptedMessageId") or ""].add(message.message_id or "")
        elif kind == "Delivery":
            tally.seen_delivery_ids[message.message_id or ""] += 1
            if trace in tally.sent:
                tally.deliveries[trace].add(message.message_id or "")
            else:
                tally.unexpected.append(f"delivery of unknown request {trace}")
        elif kind != "DeadlineNotice":
            tally.unexpected.append(f"{kind} {root.findtext(f'{T}Code')} {root.findtext(f'{T}Detail')}")
        await message.ack()

    await queue.consume(on_message)
    await stop.wait()
    await connection.close()


async def _produce(url: str, pki: DevPki, count: int, tally: Tally) -> None:
    """Publish `count` signed requests with confirms, retrying each until the broker confirms it."""
    signers = {s: Signer.from_files(pki.key_path(s), pki.cert_path(s)) for s in STATES}
    connection = await aio_pika.connect_robust(url)
    channel: aio_pika.abc.AbstractChannel | None = None
    for i in range(count):
        sender = STATES[i % len(STATES)]
        destination = STATES[(i + 1) % len(STATES)]
        message_id = str(uuid.uuid4())
        root = samples.trace_request(
            sender, exports=[(sender, destination, "2019-06-14")], message_id=message_id, serial=f"CH{i:06d}"
        )
        body = signers[sender].sign(root)
        tally.sent[message_id] = destination
        while True:
            try:
                if channel is None or channel.is_closed:
                    channel = await connection.channel(publisher_confirms=True)
                await publish(channel, sender, body, message_id, timeout=10)
                break
            except Exception:  # broker restarting or connection dropped: publish the same bytes again
                channel = None
                await asyncio.sleep(0.5)
    await connection.close()


async def _chaos(gateway: Gateway, kills: int, restarts: int, drops: int, duration: float) -> list[str]:
    """Kill the gateway, restart the broker and drop connections at random moments during `duration` s."""
    events = ["kill"] * kills + ["broker-restart"] * restarts + ["drop"] * drops
    random.shuffle(events)
    done = []
    for event in events:
        await asyncio.sleep(duration / (len(events) + 1))
        if event == "kill":
            gateway.kill()
            await asyncio.sleep(0.5)
            gateway.start()
        elif event == "broker-restart":
            await asyncio.to_thread(_restart_broker)
        else:
            await asyncio.to_thread(_rabbitmqctl, "close_all_connections", "chaos test")
        done.append(event)
    return done


async def run(
    messages: int = 3000, kills: int = 3, restarts: int = 1, drops: int = 2, settle: float = 120.0
) -> dict[str, Any]:
    """The whole soak: set up, push, break things, settle, count; returns the figures."""
    tmp = Path(tempfile.mkdtemp(prefix="tracegate-chaos-"))
    vhost = f"tracegate-chaos-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    pki = create_dev_pki(tmp / "pki", tmp / "certs", STATES, now=datetime.now(UTC) - timedelta(days=1))
    (tmp / "routing.toml").write_text("".join(f"[states.{s}]\n" for s in STATES))
    env = serve_env(
        tmp,
        url,
        pki,
        database_url=f"sqlite+aiosqlite:///{tmp / 'chaos.db'}",
        queue_type="quorum",
        log_level="warning",
        log_format="json",
        broker_connect_seconds="120",
    )
    gateway = Gateway(env, tmp / "serve.log")
    gateway.start()
    tally = Tally()
    stop = asyncio.Event()
    started = time.monotonic()
    try:
        await until_declared(url, STATES[0], attempts=600)
        consumers = [asyncio.create_task(_consume(s, url, tally, stop)) for s in STATES]
        duration = max(5.0, messages / 150)
        chaos = asyncio.create_task(_chaos(gateway, kills, restarts, drops, duration))
        await _produce(url, pki, messages, tally)
        events = await chaos
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline and tally.figures()["lost"] > 0:  # noqa: ASYNC110  (polls a tally the consumers fill)
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # let late duplicates, if any, arrive before counting
        stop.set()
        await asyncio.gather(*consumers, return_exceptions=True)
    finally:
        gateway.stop()
        _rabbitmqctl("delete_vhost", vhost)
    figures: dict[str, Any] = {
        **tally.figures(),
        "events": events,
        "seconds": round(time.monotonic() - started, 1),
        "unexpected_examples": tally.unexpected[:5],
    }
    shutil.rmtree(tmp, ignore_errors=True)
    return figures


def report(figures: dict[str, Any]) -> None:
    """Print the table and write bench/results/chaos.json."""
    print(f"chaos run: {figures['sent']} requests, events {', '.join(figures['events'])}, {figures['seconds']} s")
    for key in ("accepted", "delivered", "lost", "duplicated_with_new_id", "unexpected", "redelivered_same_id"):
        print(f"  {key.replace('_', '-'):<24} {figures[key]:>8}")
    out = Path("bench/results/chaos.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    report(asyncio.run(run()))
