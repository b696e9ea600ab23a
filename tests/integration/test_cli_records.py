"""`tracegate records` as a subprocess: import a national register from CSV, list, show, history, hits; replay."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

from gateway.audit.replay import replay
from gateway.dev import samples
from gateway.store import Store

from .conftest import Switch

CSV = """Reference,Status,Serial Number,Make,Model,Caliber,Country_of_Manufacture,Date,Place
ZA-1,stolen,BER-D12345Z,Beretta,92FS,9x19mm,IT,2025-01-02,Pretoria
ZA-2,lost,GLK 77.001,Glock Ges.m.b.H.,17,9x19mm,AT,2025-02-03,
ZA-3,misplaced,X1,Glock,17,9mm,AT,2025-02-03,
ZA-4,stolen,,Glock,17,9mm,AT,2025-02-03,
ZA-5,stolen,X5,Glock,17,9mm,AT,03/02/2025,
ZA-1,stolen,X6,Glock,17,9mm,AT,2025-02-03,
"""


def tracegate(switch: Switch, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the command against the switch's database."""
    env = dict(os.environ)
    env["TRACEGATE_DATABASE_URL"] = switch.settings.database_url
    env["TRACEGATE_DATABASE_SCHEMA"] = switch.settings.database_schema
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode == 0) == ok, done.stderr
    return done


async def test_import_takes_good_rows_refuses_the_rest_and_is_audited(switch: Switch, tmp_path: Path) -> None:
    """A dry run writes nothing; the import takes 2 rows, names each refused line; a hit, hits and replay follow."""
    file = tmp_path / "za-register.csv"
    file.write_text(CSV, encoding="utf-8")
    dry = tracegate(switch, "records", "import", str(file), "--state", "za", "--dry-run").stdout
    assert "would take 2 row(s) for ZA" in dry and "refused 4" in dry
    assert json.loads(tracegate(switch, "records", "list", "--format", "json").stdout) == []
    done = tracegate(switch, "records", "import", str(file), "--state", "ZA").stdout
    assert "took 2 row(s) for ZA (2 new, 0 updated), refused 4" in done
    for line, reason in (
        (4, "status 'misplaced'"),
        (5, "serial_number is empty"),
        (6, "not a date"),
        (7, "repeats line 2"),
    ):
        assert f"line {line}: " in done and reason in done, done
    listed = json.loads(tracegate(switch, "records", "list", "--state", "ZA", "--format", "json").stdout)
    assert sorted(r["reference"] for r in listed) == ["ZA-1", "ZA-2"]
    lost = list(
        csv.DictReader(io.StringIO(tracegate(switch, "records", "list", "--status", "lost", "--format", "csv").stdout))
    )
    assert [r["reference"] for r in lost] == ["ZA-2"]
    # A trace request elsewhere for the imported Glock (its make written another way) hits it.
    outcome = await switch.send("KE", samples.trace_request("KE", serial="glk77001", make="GLOCK", made_in="AT"))
    assert outcome.outcome == "accepted"
    assert [g.kind for g in switch.take("ZA")] == ["HitNotice"]
    hits = json.loads(tracegate(switch, "records", "hits", "--state", "KE", "--format", "json").stdout)
    assert [(h["reference"], h["found_by"], h["trace_id"]) for h in hits] == [("ZA-2", "KE", outcome.trace_id)]
    assert "found by KE (exact)" in tracegate(switch, "records", "show", "ZA", "ZA-2").stdout
    history = json.loads(tracegate(switch, "records", "history", "ZA", "ZA-2", "--format", "json").stdout)
    assert [(v["version"], v["change"]) for v in history] == [(1, "imported")]
    async with switch.store.reading() as reads:
        records = [r for r in await reads.records(0, 10_000) if r.type == "record-import"]
    [audited] = [r.fields() for r in records]
    assert audited["file_sha256"] == hashlib.sha256(file.read_bytes()).hexdigest()
    assert (audited["taken"], audited["refused"]) == (2, 4)
    report = await replay(switch.store, switch.settings)
    assert report.ok, [str(d) for d in report.divergences]


async def test_a_tampered_import_is_named_by_replay(switch: Switch, tmp_path: Path) -> None:
    """An imported row edited in the database afterwards no longer matches the import's audited digest."""
    file = tmp_path / "za.csv"
    file.write_text(CSV, encoding="utf-8")
    tracegate(switch, "records", "import", str(file), "--state", "ZA")
    store: Store = switch.store
    async with store.engine.begin() as conn:
        await conn.exec_driver_sql("UPDATE record_history SET serial = 'OTHER' WHERE reference = 'ZA-1'")
    report = await replay(store, switch.settings)
    assert any("no longer match the SHA-256" in str(d) for d in report.divergences)


async def test_a_file_without_the_required_columns_is_refused_whole(switch: Switch, tmp_path: Path) -> None:
    """A header lacking a required column, or naming an unknown one, is refused before any row is read."""
    file = tmp_path / "bad.csv"
    file.write_text("Reference,Colour\nZA-1,blue\n", encoding="utf-8")
    done = tracegate(switch, "records", "import", str(file), "--state", "ZA", ok=False)
    assert "unknown column(s) Colour" in done.stderr and "missing status, serialnumber, date" in done.stderr
    assert json.loads(tracegate(switch, "records", "list", "--format", "json").stdout) == []


async def test_a_second_import_updates_the_states_records_and_keeps_their_history(
    switch: Switch, tmp_path: Path
) -> None:
    """Importing again makes new versions of the records the state has, not new records."""
    file = tmp_path / "za.csv"
    file.write_text(CSV, encoding="utf-8")
    tracegate(switch, "records", "import", str(file), "--state", "ZA")
    again = tracegate(switch, "records", "import", str(file), "--state", "ZA").stdout
    assert "took 2 row(s) for ZA (0 new, 2 updated)" in again
    history = json.loads(tracegate(switch, "records", "history", "ZA", "ZA-1", "--format", "json").stdout)
    assert [v["version"] for v in history] == [1, 2]
    report = await replay(switch.store, switch.settings)
    assert report.ok, [str(d) for d in report.divergences]
