"""Audit export: JSON Lines by trace, state or window; bundles an auditor verifies with nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from gateway.auditor import write_checkpoint
from gateway.bundle import Selection, export_lines, verify_bundle, write_bundle
from gateway.store import inbound

from .conftest import Switch
from .test_audit import story


async def lines(switch: Switch, selection: Selection) -> list[dict[str, object]]:
    """Exported records, decoded."""
    return [json.loads(line) async for line in export_lines(switch.store, selection)]


async def test_export_by_trace_state_and_window(switch: Switch) -> None:
    """Each filter returns exactly the records it names, in chain order."""
    await story(switch)
    everything = await lines(switch, Selection())
    trace = next(r["trace_id"] for r in everything if r["type"] == "trace")
    of_trace = await lines(switch, Selection(trace_id=str(trace)))
    assert of_trace and all(r["trace_id"] == trace for r in of_trace)
    assert [r["seq"] for r in of_trace] == sorted(r["seq"] for r in of_trace)
    of_ke = await lines(switch, Selection(state="ke"))
    assert {r["data"]["sender"] for r in of_ke if r["type"] == "message-in"} == {"KE"}  # type: ignore[index]
    assert {r["data"]["recipient"] for r in of_ke if r["type"] == "message-out"} == {"KE"}  # type: ignore[index]
    later = await lines(switch, Selection(since=switch.clock.now - timedelta(minutes=1)))
    assert later and len(later) < len(everything)


async def test_bundle_verifies_on_its_own_and_tampering_is_named(switch: Switch, tmp_path: Path) -> None:
    """A state's bundle verifies away from the database; an altered message or record inside it is named."""
    await story(switch)
    await write_checkpoint(switch.store, switch.pipeline.signer, switch.clock.now)
    bundle = tmp_path / "bundle"
    manifest = await write_bundle(
        switch.store,
        Selection(state="ZA"),
        bundle,
        trust_dir=switch.settings.trust_dir,
        gateway_cert=switch.settings.gateway_cert,
    )
    assert manifest["anchored_by_checkpoint"]
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    assert report.checkpoints >= 1 and report.signatures_checked >= 2
    altered = tmp_path / "altered"
    shutil.copytree(bundle, altered)
    message = next(p for p in (altered / "messages").iterdir() if b"TraceRequest" in p.read_bytes())
    message.write_bytes(message.read_bytes().replace(b"BXK291", b"BXK297"))
    report = verify_bundle(altered)
    assert not report.ok and "no longer match" in report.problems[0]
    edited = tmp_path / "edited"
    shutil.copytree(bundle, edited)
    records = (edited / "records.jsonl").read_text().splitlines()
    first = json.loads(records[0])
    first["data"]["outcome"] = "refused"
    records[0] = json.dumps(first)
    (edited / "records.jsonl").write_text("\n".join(records) + "\n")
    report = verify_bundle(edited)
    assert report.problems[0].startswith(f"record {first['seq']}:") and "edited" in report.problems[0]


def tracegate(switch: Switch, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command against the switch's database, trust material and gateway certificate."""
    env = {
        **os.environ,
        "TRACEGATE_DATABASE_URL": switch.settings.database_url,
        "TRACEGATE_DATABASE_SCHEMA": switch.settings.database_schema,
        "TRACEGATE_TRUST_DIR": str(switch.settings.trust_dir),
        "TRACEGATE_GATEWAY_CERT": str(switch.settings.gateway_cert),
        "TRACEGATE_GATEWAY_KEY": str(switch.settings.gateway_key),
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_audit_commands(switch: Switch, tmp_path: Path) -> None:
    """verify exits 0 on an intact store and 1 naming the record after an edit; a bundle verifies by itself."""
    await story(switch)
    intact = tracegate(switch, "verify")
    assert intact.returncode == 0 and "intact" in intact.stdout, intact.stderr
    assert tracegate(switch, "checkpoint").stdout.startswith("checkpoint signs record")
    exported = tracegate(switch, "export", "--state", "ZA", "--bundle", str(tmp_path / "b"))
    assert exported.returncode == 0 and "exported to bundle" in exported.stdout
    assert tracegate(switch, "verify", "--bundle", str(tmp_path / "b")).returncode == 0
    async with switch.store.engine.begin() as conn:
        await conn.execute(update(inbound).where(inbound.c.code == "INCOMPLETE").values(code="NO_ROUTE"))
    tampered = tracegate(switch, "verify")
    assert tampered.returncode == 1 and "the stored code of message-in row" in tampered.stdout
