"""Normal traffic's latency beside a flood of class-1 hostile messages (issue 14: one small message stalling the
switch), on `tracegate serve` over the real broker, both phases in the same run.

normal    ZA's signed ~4 KB trace requests to MZ at a fixed, moderate rate, each timed from its publish until MZ
          receives its Delivery (as bench/throughput.py times its fixed load).
baseline  the normal requests alone;
flood     the same, while KE publishes hostile messages back to back (FLOOD_IN_FLIGHT unanswered at a time):
            ns-root-inclusive    ~150 KB, thousands of unused namespace declarations on the root, SignedInfo in
                                 inclusive c14n (quadratic in libxml2 before 9b09038; refused by the parser's caps);
            ns-root-prefix-list  the same declarations, an InclusiveNamespaces prefix list naming them all in the
                                 exclusive-c14n transform;
            ns-spread-inclusive  31 declarations on every element (under the cap), inclusive c14n (refused by the
                                 signature profile);
            large-forgery        a ~700 KB well-formed request, signed, then one byte of its photograph changed
                                 (over `inline_check_bytes`: checked on a thread beside the loop).
Printed: p50 / p99 of the normal requests in both phases, and how many flood messages were sent and refused.
No figure comes from tests/ (the hostile messages are built here).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import random
import re
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
from lxml import etree

from bench.throughput import PADDING, STATES, _ctl, _trace_of_delivery, cpu_seconds, percentile
from bench.wire import consume_outbound, publish, serve_env, start_serve, until_declared
from gateway.core.model import NS
from gateway.dev import samples
from gateway.dev.pki import create_dev_pki
from gateway.xml.signatures import C14N_10, DS, EXC_C14N, Signer

NORMAL, DESTINATION, FLOODER = "ZA", "MZ", "KE"
FLOOD_IN_FLIGHT = 4
_CODE = re.compile(rb"<(?:[\w.-]+:)?Code>([^<]+)</")
_MESSAGE_ID = re.compile(rb"<(?:[\w.-]+:)?MessageId(?:\s[^>]*)?>([^<]+)</")
_ROOT_NS = b'xmlns:t="urn:itrace:1"'
_PHOTO_BYTES = 512 * 1024  # the most one Photo may hold (npc.xsd)


def _declarations(count: int, prefix: str = "u") -> bytes:
    """`count` unused namespace declarations."""
    return b"".join(b' xmlns:%s%d="urn:flood:%d"' % (prefix.encode(), i, i) for i in range(count))


def _edit_signed_info(body: bytes, c14n: str, prefixes: int = 0) -> bytes:
    """A signed document with its SignedInfo canonicalised in inclusive c14n, or with an `InclusiveNamespaces`
    list of `prefixes` prefixes in its last transform (either breaks the signature; the cost came before it)."""
    root = etree.fromstring(body)
    signed_info = root.find(f".//{{{DS}}}SignedInfo")
    assert signed_info is not None
    if c14n == "inclusive":
        method = signed_info.find(f"{{{DS}}}CanonicalizationMethod")
        assert method is not None and method.get("Algorithm") == EXC_C14N
        method.set("Algorithm", C14N_10)
    else:
        transform = signed_info.findall(f".//{{{DS}}}Transform")[-1]
        etree.SubElement(
            transform, f"{{{EXC_C14N}}}InclusiveNamespaces", PrefixList=" ".join(f"u{i}" for i in range(prefixes))
        )
    return etree.tostring(root)


def namespace_flood(genuine: bytes, declarations: int = 4800, c14n: str = "inclusive") -> bytes:
    """A signed request given `declarations` unused namespace declarations on its root (~150 KB for 4,800) and a
    canonicalisation that would render them all: `inclusive` SignedInfo, or a `prefix-list` transform."""
    edited = _edit_signed_info(genuine, c14n, declarations)
    assert _ROOT_NS in edited
    return edited.replace(_ROOT_NS, _ROOT_NS + _declarations(declarations), 1)


def spread_flood(genuine: bytes, per_element: int = 31) -> bytes:
    """`per_element` declarations on every element of the request (each under the parser's cap of 32), inclusive
    c14n for SignedInfo."""
    edited = _edit_signed_info(genuine, "inclusive")
    return re.sub(rb"<(t:[A-Za-z]+)(?=[ >/])", lambda m: b"<" + m.group(1) + _declarations(per_element, "e"), edited)


def large_forgery(signer: Signer, size: int = 520_000, sender: str = FLOODER) -> bytes:
    """A request with photographs of `size` random bytes in all (~700 KB of XML for 520,000; the XSD allows 512 KiB
    a photograph, so a larger size is split), signed, then one byte of the first photograph changed: well-formed,
    valid, wrongly signed."""
    root = samples.trace_request(sender, import_marks=[("ZA", 2014)])
    firearm = root.find(f"{{{NS}}}Firearm")
    assert firearm is not None
    data = random.Random(size).randbytes(size)
    for start in range(0, size, _PHOTO_BYTES):
        part = data[start : start + _PHOTO_BYTES]
        photo = etree.SubElement(
            firearm, f"{{{NS}}}Photo", mediaType="image/jpeg", sha256=hashlib.sha256(part).hexdigest()
        )
        photo.text = base64.b64encode(part).decode("ascii")
    body = signer.sign(root)
    at = body.index(b"<t:Photo") + 400
    return body[:at] + (b"A" if body[at : at + 1] != b"A" else b"B") + body[at + 1 :]


def flood_messages(signer: Signer) -> dict[str, bytes]:
    """The flood's variants, by name (sent in turn)."""

    def genuine() -> bytes:
        return signer.sign(samples.trace_request(FLOODER, import_marks=[("ZA", 2014)]))

    return {
        "ns-root-inclusive": namespace_flood(genuine(), c14n="inclusive"),
        "ns-root-prefix-list": namespace_flood(genuine(), c14n="prefix-list"),
        "ns-spread-inclusive": spread_flood(genuine()),
        "large-forgery": large_forgery(signer),
    }


@dataclass
class Harness:
    """One connection publishing as every state and consuming every outbound queue: normal requests are timed to
    their Delivery, the flooder's answers counted (each frees a place in the flood's window)."""

    url: str
    sent_at: dict[str, float] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    answers: Counter[str] = field(default_factory=Counter)  # what the flooder heard: a refusal code, or accepted
    window: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(FLOOD_IN_FLIGHT))
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    _connection: Any = None
    _channel: Any = None

    async def start(self) -> None:
        """Connect; consume each state's outbound queue."""
        self._connection = await aio_pika.connect(self.url)
        self._channel = await self._connection.channel(publisher_confirms=True)
        await consume_outbound(
            self._connection, STATES, lambda state: self._on_flooder if state == FLOODER else self._on_message
        )

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        key = _trace_of_delivery(message)
        if key in self.sent_at and key not in self.latency:
            self.latency[key] = time.perf_counter() - self.sent_at[key]
            self.answered.set()
        await message.ack()

    async def _on_flooder(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if message.type == "Rejection":
            found = _CODE.search(message.body)
            self.answers[found.group(1).decode() if found else "unknown refusal"] += 1
        else:
            self.answers["accepted" if message.type == "Receipt" else f"other ({message.type})"] += 1
        self.window.release()
        self.answered.set()
        await message.ack()

    async def publish(self, sender: str, body: bytes, message_id: str, *, timed: bool = True) -> None:
        """Publish one message as `sender`, confirmed (the AMQP message_id is the Header's, as the contract says)."""
        if timed:
            self.sent_at[message_id] = time.perf_counter()
        await publish(self._channel, sender, body, message_id)

    async def until(self, done: Any, timeout: float) -> bool:
        """Wait until `done()` holds (re-checked after each answer), at most `timeout` seconds."""
        deadline = time.perf_counter() + timeout
        while not done():
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self.answered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.answered.wait(), timeout=min(left, 0.5))
        return True

    async def close(self) -> None:
        """Close the connection."""
        if self._connection is not None:
            await self._connection.close()


async def _phase(
    harness: Harness, normal: list[tuple[str, bytes]], rate: float, flood: list[bytes] | None, pid: int
) -> dict[str, Any]:
    """Publish `normal` at `rate` per second, timing each to its Delivery; with `flood`, KE's hostile messages
    meanwhile, FLOOD_IN_FLIGHT unanswered at a time, until the normal requests are all delivered."""
    stop = asyncio.Event()
    before = Counter(harness.answers)
    published = 0

    async def flooder(bodies: list[bytes]) -> None:
        nonlocal published
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(harness.window.acquire(), timeout=0.5)
                if stop.is_set():
                    harness.window.release()
                    return
                body = bodies[published % len(bodies)]
                found = _MESSAGE_ID.search(body)
                await harness.publish(FLOODER, body, found.group(1).decode() if found else "", timed=False)
                published += 1

    flooding = asyncio.create_task(flooder(flood)) if flood else None
    if flood:
        await harness.until(lambda: published >= FLOOD_IN_FLIGHT, timeout=10)  # the flood is running first
    cpu_before, started = cpu_seconds(pid), time.perf_counter()
    publishes = []
    for i, (key, body) in enumerate(normal):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        publishes.append(asyncio.create_task(harness.publish(NORMAL, body, key)))  # on time, whatever the confirms
    await asyncio.gather(*publishes)
    await harness.until(lambda: all(key in harness.latency for key, _ in normal), timeout=30)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    stop.set()
    if flooding is not None:
        await flooding
    latencies = [harness.latency[key] * 1000 for key, _ in normal if key in harness.latency]
    got: Counter[str] = Counter()

    def settled() -> bool:
        got.clear()
        got.update(harness.answers - before)
        return got.total() >= published

    await harness.until(settled, timeout=30)  # every flood message answered (or 30 s passed)
    accepted = got.get("accepted", 0)
    refused = sum(n for answer, n in got.items() if answer != "accepted" and not answer.startswith("other"))
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "normal": len(latencies),
        "offered": len(normal),
        "seconds": elapsed,
        "tracegate_cpu_s": cpu,
        "flood_sent": published,
        "flood_refused": refused,
        "flood_accepted": accepted,
        "flood_unanswered": max(0, published - got.total()),
        "flood_refusal_rate": refused / published if published else 0.0,
        "flood_per_s": published / elapsed if flood else 0.0,
        "flood_codes": ", ".join(f"{code} {n}" for code, n in sorted(got.items())) or "-",
    }


async def main(requests: int = 500, rate: float = 50.0, *, flood_first: bool = False) -> dict[str, Any]:
    """Both phases against one `tracegate serve`; prints the table and returns the figures. Repeated runs alternate
    which phase goes first (`flood_first`), as the machine's speed drifts."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        vhost = f"tracegate-bench-hostile-{uuid.uuid4().hex[:8]}"
        _ctl("add_vhost", vhost)
        _ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        pki = create_dev_pki(tmp / "pki", tmp / "certs", STATES, now=datetime.now(UTC) - timedelta(days=1))
        (tmp / "routing.toml").write_text("".join(f"[states.{s}]\n" for s in STATES))
        za = Signer.from_files(pki.key_path(NORMAL), pki.cert_path(NORMAL))

        def normal_requests(tag: str, count: int = requests) -> list[tuple[str, bytes]]:
            out = []
            for i in range(count):
                message_id = str(uuid.uuid4())
                root = samples.trace_request(
                    NORMAL,
                    exports=[(NORMAL, DESTINATION, "2019-06-14")],
                    message_id=message_id,
                    serial=f"{tag}{i:06d}",
                    notes=PADDING,
                )
                out.append((message_id, za.sign(root)))
            return out

        flood = flood_messages(Signer.from_files(pki.key_path(FLOODER), pki.cert_path(FLOODER)))
        batches = {"baseline": normal_requests("A"), "flood": normal_requests("B")}
        variables = serve_env(tmp, url, pki, database_url=f"sqlite+aiosqlite:///{tmp / 'hostile.db'}")
        process = start_serve(variables, tmp / "serve.log")
        harness = Harness(url)
        figures: dict[str, Any] = {}
        try:
            await until_declared(url)
            await harness.start()
            await _phase(harness, normal_requests("W", 20), rate, None, process.pid)  # warm-up, not counted
            for phase in ("flood", "baseline") if flood_first else ("baseline", "flood"):
                figures[phase] = await _phase(
                    harness, batches[phase], rate, list(flood.values()) if phase == "flood" else None, process.pid
                )
        finally:
            await harness.close()
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
            _ctl("delete_vhost", vhost)
    result = {
        "baseline": figures["baseline"],
        "flood": figures["flood"],
        "flood_bytes": {name: len(body) for name, body in flood.items()},
        "flood_in_flight": FLOOD_IN_FLIGHT,
        "rate": rate,
        "requests": requests,
        "first": "flood" if flood_first else "baseline",
    }
    report(result)
    return result


def report(figures: dict[str, Any]) -> None:
    """The figures a person reads (one run's, or the medians of several)."""
    baseline, flooded = figures["baseline"], figures["flood"]
    print(
        f"hostile load (tracegate serve, real broker): {figures['requests']:.0f} normal requests "
        f"{NORMAL}->{DESTINATION} at {figures['rate']:.0f}/s, alone and beside a flood from {FLOODER}"
    )
    sizes = ", ".join(f"{name} {size / 1000:.0f} KB" for name, size in figures["flood_bytes"].items())
    print(f"  flood: {figures['flood_in_flight']:.0f} unanswered at a time, in turn: {sizes}")
    for name, phase in (("normal alone (baseline)", baseline), ("normal during the flood", flooded)):
        print(
            f"  {name:<26} p50 {phase['p50_ms']:7.1f} ms   p99 {phase['p99_ms']:7.1f} ms   "
            f"max {phase['max_ms']:7.1f} ms   ({phase['normal']:.0f}/{phase['offered']:.0f} delivered; "
            f"tracegate CPU {phase['tracegate_cpu_s']:.1f} s)"
        )
    print(
        f"  flood: {flooded['flood_sent']:.0f} sent ({flooded['flood_per_s']:.0f}/s), {flooded['flood_refused']:.0f} "
        f"refused ({flooded['flood_refusal_rate']:.1%}), {flooded['flood_accepted']:.0f} accepted, "
        f"{flooded['flood_unanswered']:.0f} unanswered: {flooded['flood_codes']}"
    )
    for i, run in enumerate(figures.get("runs", []), 1):
        print(
            f"    run {i} ({run['first']} first): p50/p99 alone {run['baseline']['p50_ms']:.1f}/"
            f"{run['baseline']['p99_ms']:.1f} ms, during the flood {run['flood']['p50_ms']:.1f}/"
            f"{run['flood']['p99_ms']:.1f} ms; flood {run['flood']['flood_sent']} sent, "
            f"{run['flood']['flood_refused']} refused"
        )
