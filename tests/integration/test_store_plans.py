"""The statements the switch runs while it works are served by indexes: none reads a whole growing table.

A full scan costs nothing on a test's few rows and grows with every message kept; on a switch holding a year of
traffic, one per batch is the difference between microseconds and seconds. SQLite's own query planner says.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event

from gateway.adapters.memory import MemoryBroker
from gateway.core.ports import Inbound
from gateway.dev import samples
from gateway.dev.pki import DevPki
from gateway.xml.signatures import Signer

from .conftest import Clock, _assemble, settings_for

GROWING = ("inbound", "outbox", "traces", "deadlines", "audit")


async def test_the_hot_path_reads_no_growing_table_whole(pki: DevPki, routing_table: Path, tmp_path: Path) -> None:
    """SQLite's query planner serves every read of the hot path by an index."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'plans.db'}"
    signers = {s: Signer.from_files(pki.key_path(s), pki.cert_path(s)) for s in pki.states}
    switch = await _assemble(settings_for(pki, routing_table, url, None), MemoryBroker(), Clock(), signers)
    statements: list[str] = []

    def trace(adapted: Any, _record: object) -> None:
        connection: sqlite3.Connection = adapted.driver_connection._conn
        connection.set_trace_callback(statements.append)

    event.listen(switch.store.engine.sync_engine, "connect", trace)
    await switch.store.engine.dispose()
    try:
        bodies = [
            switch.sign("ZA", samples.trace_request("ZA", exports=[("ZA", "MZ", "2019-06-14")])) for _ in range(3)
        ]
        # Arriving together, they are decided in one batch (its reads look up several messages and traces at once).
        await asyncio.gather(*(switch.pipeline.handle(Inbound(body=b, routing_key="ZA", user_id="ZA")) for b in bodies))
        await switch.relay.relay_once()
        await switch.send("ZA", bodies[0])  # a repeat: answered again from the outbox
        delivery = next(g for g in switch.take("MZ") if g.kind == "Delivery")
        trace_id = delivery.find("Header/TraceId")
        switch.clock.advance(timedelta(days=8))  # past the acknowledgement deadline: the scheduler fires
        assert await switch.tick() >= 1
        await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace_id or "", created_at=switch.clock.now))
        await switch.relay.relay_once()
    finally:
        event.remove(switch.store.engine.sync_engine, "connect", trace)
    reads = {s for s in statements if re.match(r"\s*(SELECT|UPDATE|DELETE)", s, re.IGNORECASE)}
    assert len(reads) >= 6  # the batch's reads, the repeat's answer, the scheduler's scan, the relay's poll
    database = sqlite3.connect(tmp_path / "plans.db")
    scans = []
    for sql in sorted(reads):
        plan = " / ".join(row[3] for row in database.execute("EXPLAIN QUERY PLAN " + sql))
        if any(re.search(rf"\bSCAN {table}\b(?! USING)", plan) for table in GROWING):
            scans.append(f"{plan}  <=  {sql[:160]}")
    database.close()
    await switch.store.close()
    assert scans == []
