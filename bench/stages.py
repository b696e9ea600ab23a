"""Per-stage CPU costs of the pipeline, from a cProfile of it handling the same signed requests in-process, 16 at
a time as under load; and the whole pipeline's CPU per message, measured without the profiler."""

from __future__ import annotations

import asyncio
import cProfile
import dataclasses
import pstats
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.adapters.memory import MemoryBroker
from gateway.app import build_pipeline, load_parts
from gateway.core.ports import Inbound
from gateway.outbox.relay import OutboxRelay
from gateway.pipeline.flow import Pipeline
from gateway.settings import Settings
from gateway.store import Store

if TYPE_CHECKING:
    from bench.throughput import Env

# Stage → the (file suffix, function name) pairs whose cumulative times make up that stage's cost.
STAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "parse": (("gateway/xml/envelope.py", "open_envelope"),),
    "xsd": (("gateway/xml/schemas.py", "validate"),),
    "verify": (("gateway/xml/signatures.py", "verify"),),
    "decide": (("gateway/core/decide.py", "decide"),),
    "sign": (("gateway/xml/signing.py", "sign"),),
    "store writes": (
        ("gateway/store/bulk.py", "insert"),
        ("gateway/store/bulk.py", "insert_returning_ids"),
        ("gateway/store/bulk.py", "update"),
        ("gateway/core/chain.py", "chain"),
    ),
    "publish": (("gateway/outbox/relay.py", "_publish"),),
}
IN_FLIGHT = 16  # as the harness keeps at saturation: the committer batches them as it does under load


@dataclasses.dataclass
class _InProcess:
    """The pipeline on a SQLite file of its own, relaying to a memory broker."""

    store: Store
    pipeline: Pipeline
    relay: OutboxRelay
    broker: MemoryBroker


async def _in_process(env: Env, database: str) -> _InProcess:
    """The switch's pipeline as `serve` builds it, on `database` in the run's folder."""
    settings = dataclasses.replace(
        Settings(),
        database_url=f"sqlite+aiosqlite:///{env.tmp / database}",
        routing_table=env.tmp / "routing.toml",
        trust_dir=env.pki.trust_dir,
        gateway_key=env.pki.gateway_key_path,
        gateway_cert=env.pki.gateway_cert_path,
        max_message_age_hours=24 * 365,
    )
    parts = load_parts(settings)
    store = Store(settings.database_url)
    await store.start()
    broker = MemoryBroker()
    await broker.declare_topology(parts.table.states, outbound=[e.queue for e in parts.table.states.values()])
    pipeline = build_pipeline(settings, parts, store, lambda: datetime.now(UTC))
    return _InProcess(store, pipeline, OutboxRelay(store, broker, lambda: datetime.now(UTC)), broker)


async def _run(env: Env, bodies: list[tuple[str, str, bytes]], profiler: cProfile.Profile | None) -> float:
    """Handle the requests, 16 at a time, relaying with the memory broker; returns the CPU seconds it took
    (profiled if a profiler is given)."""
    switch = await _in_process(env, "stages.db")
    started = time.process_time()
    if profiler is not None:
        profiler.enable()
    for i in range(0, len(bodies), IN_FLIGHT):
        chunk = bodies[i : i + IN_FLIGHT]
        await asyncio.gather(
            *(switch.pipeline.handle(Inbound(body, routing_key=sender, user_id=sender)) for sender, _, body in chunk)
        )
        await switch.relay.relay_once()
    if profiler is not None:
        profiler.disable()
    spent = time.process_time() - started
    await switch.store.close()
    return spent


def _quiet() -> None:
    """The in-process pipeline logs warnings only (as `tracegate serve` does under the harness)."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def outbound_sizes(env: Env, count: int = 10) -> dict[str, int]:
    """The mean size in bytes of each kind of message the switch sends for these requests (a Delivery and a
    Receipt each), from the pipeline in-process: the null relay publishes the same sizes."""
    _quiet()
    switch = await _in_process(env, "sizes.db")
    try:
        for sender, _, body in env.bodies[-count:]:
            await switch.pipeline.handle(Inbound(body=body, routing_key=sender, user_id=sender))
        await switch.relay.relay_once()
    finally:
        await switch.store.close()
    sizes: dict[str, list[int]] = {}
    for queue in switch.broker.queues.values():
        for message in queue:
            sizes.setdefault(message.kind, []).append(len(message.body))
    return {kind: sum(found) // len(found) for kind, found in sizes.items()}


async def profile(env: Env, count: int = 300) -> dict[str, float]:
    """Milliseconds of CPU per message for each stage (profiled), and for the whole pipeline (not profiled: the
    profiler's own cost would count; this is everything the gateway does per message but the broker's part)."""
    _quiet()
    profiler = cProfile.Profile()
    await _run(env, env.bodies[-count:], profiler)
    loaded: Any = pstats.Stats(profiler)
    stats: dict[Any, Any] = loaded.stats
    out = {}
    for stage, functions in STAGES.items():
        total = sum(
            v[3]
            for (file, _, function), v in stats.items()
            for suffix, name in functions
            if file.endswith(suffix) and function == name
        )
        out[stage] = round(total * 1000 / count, 3)
    unprofiled = env.bodies[-2 * count : -count]
    out["whole pipeline"] = round(await _run(env, unprofiled, None) * 1000 / len(unprofiled), 3)
    return out
