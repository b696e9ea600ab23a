"""`audit verify` holds the register to the chain: every version, import and hit, and the current rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.dev import samples
from gateway.store.imports import import_file

from .conftest import Switch
from .test_audit import checkpoint, verified

CSV = (
    "reference,status,serial_number,make,date\n"
    "ZA-10,lost,GLK-1000,Glock,2025-01-02\n"
    "ZA-11,stolen,GLK-1001,Glock,2025-01-03\n"
)


async def register_story(switch: Switch, tmp_path: Path) -> None:
    """An import, a report, an update, a hit and a withdrawal, then a checkpoint."""
    file = tmp_path / "za.csv"
    file.write_text(CSV)
    await import_file(switch.store, file, "ZA", now=switch.clock.now)
    await switch.send(
        "ZA", samples.record_report("ZA", "ZA-1", serial="BER-1", make="Beretta", created_at=switch.clock.now)
    )
    await switch.send(
        "ZA", samples.record_report("ZA", "ZA-1", serial="BER-1", status="trafficked", created_at=switch.clock.now)
    )
    await switch.send("KE", samples.trace_request("KE", serial="GLK 1000", created_at=switch.clock.now))
    await switch.send("ZA", samples.record_withdrawal("ZA", "ZA-11", created_at=switch.clock.now))
    assert await checkpoint(switch)


async def test_an_untouched_register_verifies(switch: Switch, tmp_path: Path) -> None:
    """Imports, reports, updates, hits and withdrawals all agree with the chain."""
    await register_story(switch, tmp_path)
    report = await verified(switch)
    assert report.ok, report.problems


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (
            "UPDATE records SET status = 'withdrawn' WHERE reference = 'ZA-1'",
            "the stored status differs from its version",
        ),
        (
            "UPDATE record_history SET serial = 'X' WHERE reference = 'ZA-1' AND version = 1",
            "of version 1 of record ZA ZA-1",
        ),
        ("UPDATE record_history SET make = 'Colt' WHERE reference = 'ZA-10'", "register import"),
        ("DELETE FROM record_hits", "which is missing (deleted)"),
        ("UPDATE record_hits SET found_by = 'BR'", "found_by of the hit"),
        (
            "INSERT INTO record_history (state, reference, status, serial, serial_key, shape_key, date, reported_at, "
            "updated_at, version, source, change) SELECT state, reference, status, serial, serial_key, shape_key, "
            "date, reported_at, updated_at, 9, source, 'updated' FROM records WHERE reference = 'ZA-1'",
            "version 9 of record ZA ZA-1 has no audit record",
        ),
    ],
)
async def test_an_edit_of_the_register_is_named(switch: Switch, tmp_path: Path, tamper: str, named: str) -> None:
    """A status hidden, a version, an imported row or a hit edited, deleted or inserted: each is named."""
    await register_story(switch, tmp_path)
    async with switch.store.engine.begin() as conn:
        await conn.exec_driver_sql(tamper)
    report = await verified(switch)
    assert any(named in p for p in report.problems), report.problems
