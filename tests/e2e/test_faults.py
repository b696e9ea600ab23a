"""Database faults: the gateway stops taking messages while it cannot commit, says so, and resumes by itself."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import uuid
from pathlib import Path

from gateway.dev import samples
from gateway.dev.npc import NationalSystem, Received
from gateway.dev.pki import DevPki

from ..conftest import drop_schema
from .conftest import STATES, Served, serve_env, signer

REQUEST = {"exports": [("ZA", "MZ", "2019-06-14")]}


def free_port() -> int:
    """A free local TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def health(port: int) -> tuple[int, dict[str, object]]:
    """GET /health: (status code, JSON)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


async def healthy(port: int, timeout: float = 15) -> bool:
    """Whether /health answers 200 within `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if (await health(port))[0] == 200:
            return True
        await asyncio.sleep(0.2)
    return False


async def send_requests(npcs: dict[str, NationalSystem], pki: DevPki, count: int) -> None:
    """ZA sends `count` requests to MZ."""
    za = signer(pki, "ZA")
    for _ in range(count):
        await npcs["ZA"].send(za.sign(samples.trace_request("ZA", **REQUEST)))  # type: ignore[arg-type]


async def distinct(npc: NationalSystem, path: str, count: int, timeout: float = 90) -> dict[str, Received]:
    """Messages until `count` distinct values at `path` (a recipient drops repeats by MessageId, so may we)."""
    seen: dict[str, Received] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while len(seen) < count and asyncio.get_running_loop().time() < deadline:
        for message in await npc.receive(count, timeout=2):
            seen.setdefault(message.find(path) or "", message)
    return seen


async def connect_all(url: str) -> dict[str, NationalSystem]:
    """Every national system, connected."""
    systems = {s: NationalSystem(s, url) for s in STATES}
    for npc in systems.values():
        await npc.connect(purge=True)
    return systems


async def test_sqlite_lock_pauses_then_resumes_without_loss(
    pki: DevPki, routing_table: Path, amqp_url: str, tmp_path: Path
) -> None:
    """Another process holds the database for 8 s: health turns 503, nothing is lost, all 10 go through after."""
    port = free_port()
    served = Served(serve_env(pki, routing_table, amqp_url, tmp_path, health_port=str(port)), tmp_path / "serve.log")
    served.start()
    npcs = await connect_all(amqp_url)
    locker = sqlite3.connect(tmp_path / "serve.db", timeout=1, isolation_level=None)
    try:
        assert await healthy(port), "the gateway never reported itself healthy"
        locker.execute("BEGIN EXCLUSIVE")
        await send_requests(npcs, pki, 10)
        await asyncio.sleep(8)
        status, body = await health(port)
        assert (status, body["database"], body["consuming"]) == (503, "down", False)
        locker.execute("ROLLBACK")
        receipts = await npcs["ZA"].receive(10, timeout=40)
        deliveries = await npcs["MZ"].receive(10, timeout=20)
        assert [m.kind for m in receipts] == ["Receipt"] * 10 and len(deliveries) == 10
        assert len({m.find("AcceptedMessageId") for m in receipts}) == 10
        assert await healthy(port)
        log = (tmp_path / "serve.log").read_text()
        assert '"database": "down"' in log and '"database": "up"' in log
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        for npc in npcs.values():
            await npc.close()
        assert served.stop() == 0


async def test_postgresql_restart_is_survived(pki: DevPki, routing_table: Path, amqp_url: str, tmp_path: Path) -> None:
    """PostgreSQL restarts under load: every request is answered once and delivered once."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = serve_env(
        pki,
        routing_table,
        amqp_url,
        tmp_path,
        database_url="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        database_schema=schema,
    )
    served = Served(env, tmp_path / "serve.log")
    served.start()
    npcs = await connect_all(amqp_url)
    try:
        await send_requests(npcs, pki, 10)
        version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
        restart = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
        await asyncio.to_thread(subprocess.run, restart, check=True, capture_output=True, timeout=120)
        await send_requests(npcs, pki, 10)
        receipts = await distinct(npcs["ZA"], "AcceptedMessageId", 20)
        deliveries = await distinct(npcs["MZ"], "Header/TraceId", 20)
        assert len(receipts) == 20 and all(m.kind == "Receipt" for m in receipts.values())
        assert len(deliveries) == 20 and len({m.message_id for m in deliveries.values()}) == 20
    finally:
        for npc in npcs.values():
            await npc.close()
        served.stop()
        await asyncio.to_thread(drop_schema, schema)
