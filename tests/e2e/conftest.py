"""`tracegate serve` as a process of its own, and national systems as separate AMQP clients."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.dev.npc import NationalSystem, Received
from gateway.dev.pki import DevPki
from gateway.xml.signatures import Signer

STATES = ("AT", "BR", "KE", "MZ", "ZA")


@dataclass
class Served:
    """A running `tracegate serve`, the environment it was given, and how to restart it."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self) -> None:
        """Start the process and wait until it serves."""
        mark = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        for _ in range(300):
            if b'"serving"' in self.log.read_bytes()[mark:] or self.process.poll() is not None:
                break
            time.sleep(0.05)
        assert self.process.poll() is None, self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: the crash a process cannot clean up after."""
        self.process.kill()
        self.process.wait(timeout=30)

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def serve_env(pki: DevPki, routing_table: Path, amqp_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment `tracegate serve` runs with: this test's broker vhost, database, PKI and table."""
    (tmp_path / "none.toml").write_text("[tracegate]\n")
    env = dict(os.environ)
    env.update(
        {
            "TRACEGATE_BROKER_URL": amqp_url,
            "TRACEGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'serve.db'}",
            "TRACEGATE_ROUTING_TABLE": str(routing_table),
            "TRACEGATE_TRUST_DIR": str(pki.trust_dir),
            "TRACEGATE_GATEWAY_KEY": str(pki.gateway_key_path),
            "TRACEGATE_GATEWAY_CERT": str(pki.gateway_cert_path),
            "TRACEGATE_MAX_MESSAGE_BYTES": "65536",
            "TRACEGATE_LOG_FORMAT": "json",
            "TRACEGATE_CONFIG": str(tmp_path / "none.toml"),
            # This session's vhost has one broker user (guest) for every national system, so the transport
            # identity is the routing key here; per-state users with a required user_id, the default, are
            # exercised on the real broker by tests/integration/test_topology.py.
            "TRACEGATE_REQUIRE_USER_ID": "false",
        }
    )
    env.update({f"TRACEGATE_{k.upper()}": v for k, v in extra.items()})
    return env


@pytest.fixture
def served(pki: DevPki, routing_table: Path, amqp_url: str, tmp_path: Path) -> Iterator[Served]:
    """`tracegate serve` on a fresh SQLite file in this session's vhost; stopped with SIGTERM."""
    running = Served(serve_env(pki, routing_table, amqp_url, tmp_path), tmp_path / "serve.log")
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def npcs(served: Served, amqp_url: str) -> AsyncIterator[dict[str, NationalSystem]]:
    """One connected national system per state, queues emptied."""
    systems = {s: NationalSystem(s, amqp_url) for s in STATES}
    for npc in systems.values():
        await npc.connect(purge=True)
    yield systems
    for npc in systems.values():
        await npc.close()


async def answer(
    npcs: dict[str, NationalSystem], state: str, body: bytes, *, routing_key: str | None = None
) -> Received:
    """Send as `state` (under `routing_key` if given) and return the one answer its queue receives."""
    await npcs[routing_key or state].send(body, routing_key=routing_key)
    got = await npcs[routing_key or state].receive(1, timeout=15)
    assert got, "the gateway did not answer"
    return got[0]


def signer(pki: DevPki, state: str) -> Signer:
    """The national system's signer."""
    return Signer.from_files(pki.key_path(state), pki.cert_path(state))
