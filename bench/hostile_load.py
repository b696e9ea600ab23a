"""Benchmark: normal traffic's latency while a hostile sender floods the switch (issue class: one small message
stalling the switch).

In one run, on the pipeline as `serve` builds it (SQLite, the memory broker: the figure is the gateway's own):
  baseline  ZA's signed requests at a fixed rate, each timed from hand-over to its committed decision;
  flood     the same, while KE hands over hostile messages back to back, 4 at a time: ~150 KB documents with
            thousands of unused namespace declarations and an inclusive-c14n SignedInfo (quadratic in libxml2
            before the profile and the parser's caps refused them), and ~700 KB genuine-looking requests whose
            signature is broken (checked off the event loop).
Printed: p50 / p99 of the normal requests in both phases, and what the flood got.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import random
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lxml import etree

from bench.stages import _quiet
from gateway import samples
from gateway.adapters.memory import MemoryBroker
from gateway.app import build_pipeline, load_parts
from gateway.model import NS
from gateway.pipeline import Pipeline
from gateway.pki import create_dev_pki
from gateway.ports import Inbound
from gateway.settings import Settings
from gateway.signatures import C14N_10, EXC_C14N, Signer
from gateway.store import Store

STATES = ("ZA", "MZ", "KE")
FLOOD_IN_FLIGHT = 4


def namespace_flood(genuine: bytes, declarations: int = 4000) -> bytes:
    """A signed request given `declarations` unused namespace declarations and an inclusive-c14n SignedInfo."""
    head, _, rest = genuine.partition(b"<t:TraceRequest")
    extra = b"".join(b' xmlns:n%d="urn:flood:%d"' % (i, i) for i in range(declarations))
    return (head + b"<t:TraceRequest" + extra + rest).replace(EXC_C14N.encode(), C14N_10.encode(), 1)


def large_forgery(signer: Signer, size: int = 520_000) -> bytes:
    """A ~700 KB request with a photograph, signed, then one byte of the photograph changed."""
    root = samples.trace_request("KE", import_marks=[("ZA", 2014)])
    firearm = root.find(f"{{{NS}}}Firearm")
    assert firearm is not None
    data = random.Random(size).randbytes(size)
    photo = etree.SubElement(firearm, f"{{{NS}}}Photo", mediaType="image/jpeg", sha256=hashlib.sha256(data).hexdigest())
    photo.text = base64.b64encode(data).decode("ascii")
    body = signer.sign(root)
    at = body.index(b"<t:Photo") + 400
    return body[:at] + (b"A" if body[at : at + 1] != b"A" else b"B") + body[at + 1 :]


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))] if ordered else float("nan")


async def _pipeline(tmp: Path) -> tuple[Pipeline, Store, dict[str, Signer]]:
    """The pipeline as `serve` builds it, on a SQLite file."""
    pki = create_dev_pki(tmp / "pki", tmp / "certs", STATES, now=datetime.now(UTC) - timedelta(days=1))
    (tmp / "routing.toml").write_text("".join(f"[states.{s}]\n" for s in STATES))
    settings = dataclasses.replace(
        Settings(),
        database_url=f"sqlite+aiosqlite:///{tmp / 'hostile.db'}",
        routing_table=tmp / "routing.toml",
        trust_dir=pki.trust_dir,
        gateway_key=pki.gateway_key_path,
        gateway_cert=pki.gateway_cert_path,
    )
    parts = load_parts(settings)
    store = Store(settings.database_url)
    await store.start()
    broker = MemoryBroker()
    await broker.declare_topology(parts.table.states, outbound=[e.queue for e in parts.table.states.values()])
    signers = {s: Signer.from_files(pki.key_path(s), pki.cert_path(s)) for s in STATES}
    pipeline = build_pipeline(settings, parts, store, lambda: datetime.now(UTC))
    pipeline.large = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-large")  # as `serve` has it
    return pipeline, store, signers


async def _phase(pipeline: Pipeline, normal: list[bytes], rate: float, flood: list[bytes] | None) -> dict[str, Any]:
    """Hand `normal` over at `rate` per second, timing each; with `flood`, KE's hostile messages meanwhile."""
    latencies: list[float] = []
    codes: Counter[str] = Counter()
    done = asyncio.Event()

    async def one(body: bytes) -> None:
        started = time.perf_counter()
        outcome = await pipeline.handle(Inbound(body, routing_key="ZA", user_id="ZA"))
        assert outcome.outcome == "accepted", outcome.detail
        latencies.append((time.perf_counter() - started) * 1000)

    async def hostile(queue: list[bytes]) -> None:
        while not done.is_set():
            outcome = await pipeline.handle(
                Inbound(queue[sum(codes.values()) % len(queue)], routing_key="KE", user_id="KE")
            )
            codes[outcome.code or outcome.outcome] += 1

    flooders = [asyncio.create_task(hostile(flood)) for _ in range(FLOOD_IN_FLIGHT)] if flood else []
    await asyncio.sleep(0.05 if flood else 0)
    tasks = []
    started = time.perf_counter()
    for i, body in enumerate(normal):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(body)))
    await asyncio.gather(*tasks)
    done.set()
    await asyncio.gather(*flooders)
    return {
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "normal": len(latencies),
        "flood": dict(codes),
    }


async def main(requests: int = 600, rate: float = 100.0) -> dict[str, Any]:
    """Both phases in one run; prints the table and returns the figures."""
    _quiet()
    with tempfile.TemporaryDirectory() as tmp:
        pipeline, store, signers = await _pipeline(Path(tmp))
        za = signers["ZA"]

        def requests_of(n: int, tag: str) -> list[bytes]:
            return [
                za.sign(samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")], serial=f"{tag}{i:06d}"))
                for i in range(n)
            ]

        genuine_ke = signers["KE"].sign(samples.trace_request("KE", import_marks=[("ZA", 2014)]))
        flood = [namespace_flood(genuine_ke), large_forgery(signers["KE"])]
        try:
            baseline = await _phase(pipeline, requests_of(requests, "A"), rate, None)
            flooded = await _phase(pipeline, requests_of(requests, "B"), rate, flood)
        finally:
            await store.close()
    sizes = [len(b) for b in flood]
    got = ", ".join(f"{code} {n}" for code, n in sorted(flooded["flood"].items()))
    print(f"hostile load: {requests} normal requests at {rate:.0f}/s, alone and beside a flood from another state")
    kinds = f"a {sizes[0] // 1000} KB namespace flood, a {sizes[1] // 1000} KB forgery"
    print(f"  flood: {FLOOD_IN_FLIGHT} in flight, alternately {kinds}")
    for name, phase in (("normal requests alone (baseline)", baseline), ("normal requests during the flood", flooded)):
        print(f"  {name:<40} p50 {phase['p50_ms']:7.1f} ms   p99 {phase['p99_ms']:7.1f} ms")
    print(f"  flood messages refused: {sum(flooded['flood'].values())} ({got})")
    return {"baseline": baseline, "flood": flooded, "flood_bytes": sizes, "rate": rate, "requests": requests}
