"""The hot path's bulk writes go to the driver directly: what they write reads back exactly as SQLAlchemy's own
inserts do, ids come back in order, and they commit or roll back with the SQLAlchemy transaction around them."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, insert, select

from gateway.store import Store, statements
from gateway.store.tables import inbound, traces

MOMENTS = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
TEXT = st.text(alphabet=string.printable + "éü中\u2028", max_size=40)


def _inbound_row(key: str, received_at: datetime, detail: str | None, body: bytes) -> dict[str, Any]:
    return {
        "sender": "ZA",
        "dedup_key": key,
        "message_id": key,
        "kind": "TraceRequest",
        "trace_id": None,
        "received_at": received_at,
        "body": body,
        "sha256": "0" * 64,
        "outcome": "refused",
        "code": "SCHEMA_INVALID",
        "detail": detail,
        "rule": None,
        "table_version": None,
    }


@pytest.fixture
async def store(database_url: tuple[str, str | None]) -> Any:
    url, schema = database_url
    s = Store(url, schema=schema)
    await s.start()
    yield s
    await s.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moment=MOMENTS, detail=st.none() | TEXT, body=st.binary(max_size=64))
async def test_bulk_rows_read_back_as_sqlalchemy_writes_them(
    store: Store, moment: datetime, detail: str | None, body: bytes
) -> None:
    """Rows the driver-level writer inserts read back exactly as SQLAlchemy's own inserts do."""
    async with store.transaction() as tx:
        ids = await (await tx.writer()).insert_returning_ids(
            inbound, [_inbound_row("bulk", moment, detail, body), _inbound_row("bulk-2", moment, detail, body)]
        )
    async with store.engine.begin() as conn:
        await conn.execute(insert(inbound).values(**_inbound_row("orm", moment, detail, body)))
        rows = {r.dedup_key: r for r in (await conn.execute(select(inbound))).all()}
        await conn.execute(delete(inbound))
    bulk, orm = rows["bulk"]._mapping, rows["orm"]._mapping
    assert [rows["bulk"].id, rows["bulk-2"].id] == ids and ids[1] == ids[0] + 1
    assert {k: v for k, v in bulk.items() if k not in {"id", "dedup_key", "message_id"}} == {
        k: v for k, v in orm.items() if k not in {"id", "dedup_key", "message_id"}
    }
    assert bulk["detail"] == detail and bytes(bulk["body"]) == body


async def test_bulk_updates_and_booleans(store: Store) -> None:
    """Driver-level updates, booleans and NULLs land as SQLAlchemy would write them."""
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    row = {
        "trace_id": "t-1",
        "requester": "ZA",
        "party": "KE",
        "destination": "KE",
        "rule": "export",
        "table_version": "sha256:x",
        "status": "open",
        "acknowledge_by": now + timedelta(days=7),
        "respond_by": now + timedelta(weeks=8),
        "opened_at": now,
        "updated_at": now,
        "confidentiality_guaranteed": False,
        "confidentiality_reason": "court order",
        "restrictions": None,
        "delay_reason": None,
        "delay_expected_by": None,
        "current_request_id": "m-1",
    }
    async with store.transaction() as tx:
        writer = await tx.writer()
        await writer.insert(traces, [row])
        await writer.update(
            traces,
            ("status", "updated_at"),
            ("trace_id",),
            [{"status": "acknowledged", "updated_at": now + timedelta(hours=1), "trace_id": "t-1"}],
        )
    (found,) = await store.fetch(select(traces))
    assert found.status == "acknowledged" and found.confidentiality_guaranteed is False
    assert found.updated_at.replace(tzinfo=UTC) == now + timedelta(hours=1)


async def test_bulk_writes_roll_back_with_the_transaction(store: Store) -> None:
    """A driver-level write inside a failed transaction is rolled back with it."""

    async def write_then_fail() -> None:
        async with store.transaction() as tx:
            await (await tx.writer()).insert_returning_ids(
                inbound, [_inbound_row("gone", datetime.now(UTC), None, b"")]
            )
            raise RuntimeError("the batch failed after writing")

    with pytest.raises(RuntimeError, match="failed after writing"):
        await write_then_fail()
    assert await store.fetch(select(inbound)) == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    moment=MOMENTS,
    detail=st.none() | TEXT,
    body=st.binary(max_size=64),
    keys=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=4),
)
async def test_driver_reads_match_sqlalchemy_reads(
    store: Store, moment: datetime, detail: str | None, body: bytes, keys: list[str]
) -> None:
    """A hot-path read through the driver gives the rows SQLAlchemy reads, values of the same types, for any number
    of values in its IN lists."""
    async with store.engine.begin() as conn:
        for key in ("a", "b", "c"):
            await conn.execute(insert(inbound).values(**_inbound_row(key, moment, detail, body)))
    try:
        async with store.transaction() as tx:
            fetched = await (await tx.writer()).fetch(statements.Q_EARLIER, senders=["ZA", "KE"], keys=keys)
        expected = await store.fetch(select(inbound).where(inbound.c.dedup_key.in_(keys)).order_by(inbound.c.id))
        assert sorted((dict(f._mapping) for f in fetched), key=lambda m: m["id"]) == [
            dict(r._mapping) for r in expected
        ]
        assert all(
            f.received_at == r.received_at and type(f.body) is type(r.body)
            for f, r in zip(sorted(fetched, key=lambda f: f.id), expected, strict=True)
        )
    finally:
        async with store.engine.begin() as conn:
            await conn.execute(delete(inbound))
