"""Per-stage CPU costs of the pipeline, from a cProfile of it handling the same signed requests in-process."""

from __future__ import annotations

import cProfile
import dataclasses
import pstats
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gateway.adapters.memory import MemoryBroker
from gateway.app import build_pipeline, load_parts
from gateway.outbox import OutboxRelay
from gateway.ports import Inbound
from gateway.settings import Settings
from gateway.store import Store

if TYPE_CHECKING:
    from bench.throughput import Env

# Stage → (file suffix, function name) whose cumulative time is that stage's cost.
STAGES = {
    "parse": ("gateway/envelope.py", "open_envelope"),
    "xsd": ("gateway/schemas.py", "validate"),
    "verify": ("gateway/signatures.py", "verify"),
    "sign": ("gateway/signatures.py", "sign"),
    "commit": ("gateway/pipeline.py", "_commit"),
    "publish": ("gateway/outbox.py", "_publish"),
    "whole pipeline": ("gateway/pipeline.py", "handle"),
}


async def _run(env: Env, count: int, profiler: cProfile.Profile) -> None:
    """Handle `count` requests and relay their outputs with the memory broker, profiled."""
    settings = dataclasses.replace(
        Settings(),
        database_url=f"sqlite+aiosqlite:///{env.tmp / 'stages.db'}",
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
    await broker.declare_topology(parts.table.states)
    pipeline = build_pipeline(settings, parts, store, lambda: datetime.now(UTC))
    relay = OutboxRelay(store, broker, lambda: datetime.now(UTC))
    bodies = env.bodies[-count:]
    profiler.enable()
    for sender, _, body in bodies:
        await pipeline.handle(Inbound(body=body, routing_key=sender))
        await relay.relay_once()
    profiler.disable()
    await store.close()


async def profile(env: Env, count: int = 300) -> dict[str, float]:
    """Milliseconds of CPU per message for each stage."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    profiler = cProfile.Profile()
    await _run(env, count, profiler)
    loaded: Any = pstats.Stats(profiler)
    stats: dict[Any, Any] = loaded.stats
    out = {}
    for stage, (suffix, name) in STAGES.items():
        total = sum(v[3] for (file, _, function), v in stats.items() if file.endswith(suffix) and function == name)
        out[stage] = round(total * 1000 / count, 3)
    return out
