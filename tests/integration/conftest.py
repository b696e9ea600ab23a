"""The switch wired to the in-memory broker and a real database, with national systems' signers."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from gateway.adapters.memory import MemoryBroker
from gateway.app import build_pipeline, load_parts
from gateway.core.effects import Outcome
from gateway.core.model import NS
from gateway.core.ports import Inbound
from gateway.dev.pki import DevPki
from gateway.outbox.relay import OutboxRelay
from gateway.pipeline.flow import Pipeline
from gateway.pipeline.scheduler import Scheduler
from gateway.settings import Settings
from gateway.store import Store
from gateway.xml.signatures import Signer

T = f"{{{NS}}}"


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        """The current test time."""
        return self.now

    def advance(self, delta: timedelta) -> None:
        """Move time forward."""
        self.now += delta


@dataclass(frozen=True)
class Got:
    """A message a national system received, parsed."""

    kind: str
    message_id: str
    body: bytes
    root: etree._Element

    def find(self, path: str) -> str | None:
        """Text at a `/`-separated path without prefixes."""
        return self.root.findtext(T + path.replace("/", "/" + T))


@dataclass
class Switch:
    """The gateway's pipeline, relay and scheduler over a memory broker: send as a state, read a state's queue."""

    pipeline: Pipeline
    relay: OutboxRelay
    scheduler: Scheduler
    broker: MemoryBroker
    store: Store
    signers: dict[str, Signer]
    clock: Clock
    settings: Settings

    async def tick(self) -> int:
        """Let the scheduler fire what is due now and relay it; returns how many notices fired."""
        fired = await self.scheduler.fire_due()
        await self.relay.relay_once()
        return fired

    async def restart(self, **changes: object) -> None:
        """Stop and start the gateway on the same database (settings may change), as a process restart would."""
        await self.store.close()
        settings = dataclasses.replace(self.settings, **changes)  # type: ignore[arg-type]
        fresh = await _assemble(settings, self.broker, self.clock, self.signers)
        self.pipeline, self.relay, self.scheduler, self.store = (
            fresh.pipeline,
            fresh.relay,
            fresh.scheduler,
            fresh.store,
        )
        self.settings = settings

    def sign(self, state: str, root: etree._Element) -> bytes:
        """Sign as `state`'s national system."""
        return self.signers[state].sign(root)

    async def send(
        self,
        state: str,
        message: etree._Element | bytes,
        *,
        routing_key: str | None = None,
        user_id: str | None = None,
    ) -> Outcome:
        """Sign (unless bytes), hand to the gateway as the broker would with a user per state (`user_id`: that of
        the state publishing, `routing_key` or `state`, unless given), and relay the outbox."""
        body = message if isinstance(message, bytes) else self.sign(state, message)
        transport = routing_key or state
        outcome = await self.pipeline.handle(Inbound(body=body, routing_key=transport, user_id=user_id or transport))
        await self.relay.relay_once()
        return outcome

    def take(self, state: str) -> list[Got]:
        """Everything the gateway sent `state`, parsed."""
        out = []
        for p in self.broker.take(state):
            root = etree.fromstring(p.body)
            out.append(Got(etree.QName(root).localname, p.message_id, p.body, root))
        return out


def settings_for(pki: DevPki, table: Path, url: str, schema: str | None) -> Settings:
    """Settings pointing at the test PKI, table and database."""
    return dataclasses.replace(
        Settings(),
        database_url=url,
        database_schema=schema or "",
        routing_table=table,
        trust_dir=pki.trust_dir,
        gateway_key=pki.gateway_key_path,
        gateway_cert=pki.gateway_cert_path,
    )


async def _assemble(settings: Settings, broker: MemoryBroker, clock: Clock, signers: dict[str, Signer]) -> Switch:
    """Build the gateway's parts on `settings` (what `tracegate serve` builds, over the memory broker)."""
    parts = load_parts(settings)
    store = Store(settings.database_url, schema=settings.database_schema or None)
    await store.start()
    await broker.declare_topology(parts.table.states, outbound=[e.queue for e in parts.table.states.values()])
    relay = OutboxRelay(store, broker, clock)
    pipeline = build_pipeline(settings, parts, store, clock)
    scheduler = Scheduler(store, parts.signer, parts.table, clock)
    await broker.consume(pipeline.handle)  # type: ignore[arg-type]
    return Switch(pipeline, relay, scheduler, broker, store, signers, clock, settings)


@pytest.fixture
async def switch(pki: DevPki, routing_table: Path, database_url: tuple[str, str | None]) -> AsyncIterator[Switch]:
    """A switch on a fresh database (SQLite and PostgreSQL) with the memory broker."""
    url, schema = database_url
    signers = {s: Signer.from_files(pki.key_path(s), pki.cert_path(s)) for s in pki.states}
    built = await _assemble(settings_for(pki, routing_table, url, schema), MemoryBroker(), Clock(), signers)
    yield built
    await built.store.close()
