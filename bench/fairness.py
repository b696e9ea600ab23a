"""A quiet state's latency beside another state's flood, same run: `python -m bench fairness`.

One `tracegate serve` (the throughput harness's settings, states sharing the guest user). KE publishes signed
requests at a steady rate, and the latency of each is timed from its publish until its Receipt reaches KE's
queue: first alone (baseline), then right after ZA has published a flood of valid signed requests (all confirmed,
so ZA's queue holds the whole backlog while KE's requests arrive). With one shared first-in-first-out queue KE's
requests waited behind the flood; with a queue per state each is served beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aio_pika

from bench.throughput import PADDING, Env, Probe, make_env, percentile
from bench.wire import consume_outbound, serve_env, start_serve, until_declared
from gateway.core.wire_names import outbound_queue
from gateway.dev import samples
from gateway.xml.signatures import Signer

QUIET, FLOOD = "KE", "ZA"
_ACCEPTED = re.compile(rb"<(?:[\w.-]+:)?AcceptedMessageId>([^<]+)</")


def _receipt_of(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """The request a Receipt answers (its `AcceptedMessageId`); "" for anything else."""
    if message.type != "Receipt":
        return ""
    found = _ACCEPTED.search(message.body)
    return found.group(1).decode() if found else ""


def _sign(env: Env, sender: str, destination: str, count: int, tag: str) -> list[tuple[str, str, bytes]]:
    """`count` signed ~4 KB requests from `sender` exporting to `destination`: (sender, message id, body)."""
    signer = Signer.from_files(env.pki.key_path(sender), env.pki.cert_path(sender))
    out = []
    for i in range(count):
        message_id = str(uuid.uuid4())
        root = samples.trace_request(
            sender,
            exports=[(sender, destination, "2019-06-14")],
            message_id=message_id,
            serial=f"{tag}{i:07d}",
            notes=PADDING,
        )
        out.append((sender, message_id, signer.sign(root)))
    return out


class Listener(Probe):
    """The throughput harness's probe, reading the quiet state's queue alone: the flood's Deliveries and Receipts
    are left in their queues (counted there), so reading them costs the timing nothing."""

    async def start(self, delivery_key: Any = _receipt_of) -> None:
        """Connect; consume only the quiet state's outbound queue."""
        self._connection = await aio_pika.connect(self.url)
        self._channel = await self._connection.channel(publisher_confirms=True)

        await consume_outbound(self._connection, [QUIET], self.timing(delivery_key), prefetch=100)

    async def answered(self, state: str) -> int:
        """Messages waiting in a state's outbound queue (nothing reads the flood's: its Receipts so far)."""
        queue = await self._channel.declare_queue(outbound_queue(state), durable=True, passive=True)
        return int(queue.declaration_result.message_count or 0)


def _serve(env: Env) -> subprocess.Popen[bytes]:
    """`tracegate serve` on the environment's vhost, as the throughput harness starts it (SQLite)."""
    variables = serve_env(env.tmp, env.url, env.pki, database_url=f"sqlite+aiosqlite:///{env.tmp / 'fairness.db'}")
    return start_serve(variables, env.tmp / "serve.log")


async def _steady(probe: Probe, bodies: list[tuple[str, str, bytes]], rate: float) -> list[float]:
    """Publish `bodies` at `rate`/s, on time whatever the confirms; the latency (ms) of each answered in 60 s."""
    started = time.perf_counter()
    publishes = []
    for i, (sender, key, body) in enumerate(bodies):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        publishes.append(asyncio.create_task(probe.publish(sender, key, body)))
    await asyncio.gather(*publishes)

    async def every_receipt() -> None:
        for _, key, _ in bodies:
            await probe.arrived.setdefault(key, asyncio.Event()).wait()

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(every_receipt(), timeout=60)
    return [probe.latency[key] * 1000 for _, key, _ in bodies if key in probe.latency]


def _figures(latencies: list[float], count: int) -> dict[str, Any]:
    """p50/p99 (ms) and how many of `count` were answered."""
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "answered": len(latencies),
        "sent": count,
    }


def report(figures: dict[str, Any]) -> None:
    """The figures a person reads."""
    print(
        f"{QUIET}'s requests at {figures['rate']:.0f}/s, request to Receipt, alone and beside {FLOOD}'s flood of "
        f"{figures['flood']} requests (same run)"
    )
    for phase in ("alone", "beside_flood"):
        got = figures[phase]
        print(
            f"  {phase.replace('_', ' '):<14} p50 {got['p50_ms']:8.1f} ms   p99 {got['p99_ms']:8.1f} ms   "
            f"({got['answered']}/{got['sent']} answered)"
        )
    print(
        f"  {FLOOD}'s flood published in {figures['flood_publish_s']:.2f} s, answered in full after "
        f"{figures['flood_drain_s']:.2f} s; {figures['flood_answered_when_quiet_done']} of its requests answered "
        f"when {QUIET}'s last one was"
    )


async def main(quiet: int = 60, flood: int = 3000, rate: float = 20.0) -> dict[str, Any]:
    """Both phases on one gateway; prints the figures and returns them."""
    with tempfile.TemporaryDirectory() as tmp:
        env = make_env(Path(tmp), 0)
        alone = _sign(env, QUIET, "MZ", quiet, "Q")
        beside = _sign(env, QUIET, "MZ", quiet, "R")
        flooding = _sign(env, FLOOD, "AT", flood, "F")
        process = _serve(env)
        probe = Listener(env.url)
        try:
            await until_declared(env.url)
            await probe.start()
            baseline = await _steady(probe, alone, rate)
            started = time.perf_counter()
            await asyncio.gather(*(probe.publish(s, k, b) for s, k, b in flooding))  # all confirmed: a backlog
            published = time.perf_counter() - started
            during = await _steady(probe, beside, rate)
            answered_then = await probe.answered(FLOOD)
            while await probe.answered(FLOOD) < flood and time.perf_counter() - started < 300:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            drained = time.perf_counter() - started
        finally:
            await probe.close()
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
            env.close()
    figures = {
        "rate": rate,
        "flood": flood,
        "alone": _figures(baseline, quiet),
        "beside_flood": _figures(during, quiet),
        "flood_publish_s": published,
        "flood_drain_s": drained,
        "flood_answered_when_quiet_done": answered_then,
    }
    report(figures)
    return figures
