"""How cost grows with work: the deadline scan over 10k, 100k and 1M open traces (with its index, beside the
same scan forced to read the table), and routing with a table of all 249 ISO 3166 states (beside 5 states)."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pycountry
from sqlalchemy import insert, text

from gateway.core.model import Confidentiality, ExportRecord, Header, ImportMark, TraceRequestInfo
from gateway.routing.rules import route
from gateway.routing.table import parse_table
from gateway.store import Store, deadlines

KINDS = ("acknowledgement-reminder", "acknowledgement-overdue", "response-reminder", "response-overdue")


async def deadline_scan(traces: int) -> tuple[float, float, str]:
    """(ms with the index, ms reading the table, the plan) for one scan of due notices among `traces` traces."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite+aiosqlite:///{Path(tmp) / 'scale.db'}")
        await store.start()
        start = datetime(2026, 1, 1, tzinfo=UTC)
        rows = []
        async with store.engine.begin() as conn:
            for i in range(traces):
                fire = start + timedelta(minutes=random.randint(0, 525_600))
                rows.append(
                    {
                        "trace_id": f"t{i}",
                        "kind": KINDS[i % 4],
                        "fire_at": fire,
                        "due_at": fire,
                        "status": "pending" if i % 10 else "fired",
                    }
                )
                if len(rows) == 20_000:
                    await conn.execute(insert(deadlines), rows)
                    rows = []
            if rows:
                await conn.execute(insert(deadlines), rows)
        now = start + timedelta(days=1)
        indexed = await _time_scan(store, now, "")
        table_scan = await _time_scan(store, now, "NOT INDEXED")
        async with store.engine.connect() as conn:
            plan = " ".join(
                str(r[-1])
                for r in (
                    await conn.execute(
                        text(
                            "EXPLAIN QUERY PLAN SELECT * FROM deadlines WHERE status = 'pending' AND fire_at <= :now "
                            "ORDER BY fire_at, id LIMIT 500"
                        ),
                        {"now": now},
                    )
                ).all()
            )
        await store.close()
    return indexed, table_scan, plan


async def _time_scan(store: Store, now: datetime, hint: str) -> float:
    """Milliseconds for the scheduler's query (best of 3); with `hint`, the same query forced to scan the table."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        if hint:
            async with store.engine.connect() as conn:
                await conn.execute(
                    text(
                        "SELECT * FROM deadlines NOT INDEXED WHERE status = 'pending' AND fire_at <= :now "
                        "ORDER BY fire_at, id LIMIT 500"
                    ),
                    {"now": now},
                )
        else:
            async with store.transaction() as tx:
                await tx.due_notices(now, 500)
        best = min(best, (time.perf_counter() - started) * 1000)
    return best


def routing(states: list[str], requests: int = 20_000) -> float:
    """Microseconds per routing decision with a table of `states`."""
    table = parse_table({"states": {s: {"status": "active"} for s in states}}, where="bench")
    header = Header(str(uuid.uuid4()), datetime.now(UTC), states[0], None)
    cases = [
        TraceRequestInfo(
            header,
            "Firearm",
            random.choice(states[1:]),
            (ImportMark(random.choice(states[1:]), 2014),),
            (ExportRecord(states[0], random.choice(states[1:]), date(2020, 1, 1)),),
            (),
            False,
            Confidentiality(True),
            None,
        )
        for _ in range(requests)
    ]
    started = time.perf_counter()
    for case in cases:
        route(case, table)
    return (time.perf_counter() - started) * 1e6 / requests


async def main(sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)) -> dict[str, object]:
    """Print and return the figures."""
    figures: dict[str, object] = {}
    print("deadline scan: the scheduler's query among N open traces, one pending notice each (SQLite):")
    for n in sizes:
        indexed, scan, plan = await deadline_scan(n)
        figures[f"deadline_scan_ms_{n}"] = {"indexed": indexed, "table_scan": scan, "plan": plan}
        print(f"  {n:>9,} traces  indexed {indexed:8.2f} ms   table scan {scan:8.2f} ms   plan: {plan}")
    every = sorted(c.alpha_2 for c in pycountry.countries)
    small, large = routing(every[:5]), routing(every)
    figures["routing_us"] = {"5_states": small, f"{len(every)}_states": large}
    print(f"routing decision: {small:.2f} µs with 5 states, {large:.2f} µs with all {len(every)} ISO 3166 states")
    return figures


if __name__ == "__main__":
    asyncio.run(main())
