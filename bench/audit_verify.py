"""Benchmark: audit records verified per second over a chain of N records (default 100,000), on SQLite.

Builds a realistic chain (a received message, then a receipt and a delivery for it: three records, with the
rows they vouch for), then times, in the same run:
  baseline  reading the records and rows only (the floor any verifier pays),
  chain     links, hashes and checkpoints,
  full      chain plus every stored row held against its record (no signature re-verification).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from sqlalchemy import insert, select

from gateway.audit.verify import ChainCheck, records_in_order, verify_store
from gateway.core import chain as rules
from gateway.dev.pki import issue_certificate
from gateway.store import Store, audit, audit_head, inbound, outbox
from gateway.xml.signatures import Signer
from gateway.xml.trust import TrustStore


def _signer() -> Signer:
    """A throwaway gateway key for the checkpoints."""
    now = datetime.now(UTC)
    return Signer.from_objects(
        *issue_certificate(
            issuer_key=None,
            issuer_cert=None,
            subject_country=None,
            common_name="bench gateway",
            key_kind="ec",
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=1),
        )
    )


async def build(store: Store, records: int, signer: Signer) -> None:
    """Write `records` chained records (and their rows) in bulk, with a checkpoint every 10,000."""
    # Timed so the chain is as a running gateway leaves it: a message every 50 ms, ending now, checkpoints well
    # within the cadence `audit verify` holds the chain to, and a closing one on the head.
    step = timedelta(milliseconds=50)
    start = datetime.now(UTC) - step * (records // 3 + 2)
    seq, prev = 0, rules.GENESIS
    inbound_rows: list[dict[str, Any]] = []
    outbox_rows: list[dict[str, Any]] = []
    chained: list[rules.Record] = []
    n = 0
    while seq < records:
        n += 1
        at = start + step * n
        body = f"<t:TraceRequest xmlns:t='urn:itrace:1'>{n:08d}{'x' * 3000}</t:TraceRequest>".encode()
        digest = hashlib.sha256(body).hexdigest()
        decision = {
            "sender": "ZA",
            "dedup_key": f"k{n}",
            "message_id": f"m{n}",
            "kind": "TraceRequest",
            "trace_id": None,
            "outcome": "refused",
            "code": "INCOMPLETE",
            "detail": "caliber",
            "rule": None,
            "table_version": "sha256:0",
        }
        inbound_rows.append({"id": n, **decision, "received_at": at, "body": body, "sha256": digest})
        entries = [rules.Entry("message-in", at, {"inbound_id": n, **decision}, None, digest)]
        for k in range(2):
            oid = 2 * n + k
            out = body[:200] + bytes([k])
            outbox_rows.append(
                {
                    "id": oid,
                    "message_id": f"o{oid}",
                    "recipient": "ZA",
                    "queue": "q",
                    "kind": "Rejection",
                    "trace_id": None,
                    "inbound_id": n,
                    "body": out,
                    "created_at": at,
                    "sent_at": at,
                }
            )
            entries.append(
                rules.Entry(
                    "message-out",
                    at,
                    {
                        "outbox_id": oid,
                        "message_id": f"o{oid}",
                        "recipient": "ZA",
                        "kind": "Rejection",
                        "inbound_id": n,
                    },
                    None,
                    hashlib.sha256(out).hexdigest(),
                )
            )
        new = rules.chain(entries, seq, prev)
        seq, prev = new[-1].seq, new[-1].hash
        chained += new
        if seq // 10_000 != (seq - 3) // 10_000 or seq >= records:
            sig = signer.sign_statement(rules.checkpoint_statement(seq, prev))
            [cp] = rules.chain(
                [
                    rules.Entry(
                        "checkpoint",
                        at,
                        {"head_seq": seq, "head_hash": prev, "signature": base64.b64encode(sig).decode()},
                    )
                ],
                seq,
                prev,
            )
            chained.append(cp)
            seq, prev = cp.seq, cp.hash
    async with store.engine.begin() as conn:
        for chunk in range(0, len(chained), 5000):
            await conn.execute(insert(audit), [r.__dict__ for r in chained[chunk : chunk + 5000]])
        for chunk in range(0, len(inbound_rows), 5000):
            await conn.execute(insert(inbound), inbound_rows[chunk : chunk + 5000])
        for chunk in range(0, len(outbox_rows), 5000):
            await conn.execute(insert(outbox), outbox_rows[chunk : chunk + 5000])
        await conn.execute(insert(audit_head).values(id=1, seq=seq, hash=prev))


async def baseline(store: Store) -> int:
    """Read every record and row, checking nothing."""
    count = 0
    async for _ in records_in_order(store):
        count += 1
    async with store.engine.connect() as conn:
        for table in (inbound, outbox):
            async for _ in await conn.stream(select(table)):
                pass
    return count


async def chain_only(store: Store, certs: list[x509.Certificate]) -> int:
    """Links, hashes and checkpoint signatures."""
    check = ChainCheck(certs)
    async for record in records_in_order(store):
        check.feed(record)
    assert not check.problems, check.problems[:3]
    return check.count


async def main(records: int = 100_000) -> dict[str, float]:
    """Build, time the three passes, print a table; returns the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}")
        await store.start()
        signer = _signer()
        built = time.perf_counter()
        await build(store, records, signer)
        built = time.perf_counter() - built
        figures: dict[str, float] = {}
        passes: list[tuple[str, Callable[[], Awaitable[int]]]] = [
            ("baseline: read records and rows", lambda: baseline(store)),
            ("chain: links, hashes, checkpoints", lambda: chain_only(store, [signer.certificate])),
            ("full: chain + every row vs its record", lambda: _full(store, signer)),
        ]
        for name, run in passes:
            started = time.perf_counter()
            count = await run()
            figures[name] = count / (time.perf_counter() - started)
        await store.close()
    print(f"audit verification, {records:,} records on SQLite (built in {built:.1f} s)")
    for name, rate in figures.items():
        print(f"  {name:<40} {rate:>12,.0f} records/s")
    return figures


async def _full(store: Store, signer: Signer) -> int:
    """The whole `audit verify` minus signature re-verification."""
    report = await verify_store(store, TrustStore(()), [signer.certificate], signatures=False)
    assert report.ok, report.problems[:3]
    return report.records


if __name__ == "__main__":
    asyncio.run(main())
