"""`tracegate traces list/show` as a subprocess over a database the switch wrote."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from gateway.dev import samples

from .conftest import Switch

REQUEST = {"exports": [("ZA", "MZ", "2019-06-14")]}


def tracegate(switch: Switch, *args: str) -> str:
    """Run the command against the switch's database; return its standard output."""
    env = dict(os.environ)
    env["TRACEGATE_DATABASE_URL"] = switch.settings.database_url
    env["TRACEGATE_DATABASE_SCHEMA"] = switch.settings.database_schema
    done = subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_list_filters_and_exports(switch: Switch) -> None:
    """Filters by state, role, status and overdue; CSV and JSON carry the same traces."""
    switch.clock.advance(timedelta(days=-8))  # the command reads the wall clock: start the story in the past
    old = await switch.send("ZA", samples.trace_request("ZA", created_at=switch.clock.now, **REQUEST))  # type: ignore[arg-type]
    switch.clock.advance(timedelta(days=8))
    fresh = await switch.send(
        "KE", samples.trace_request("KE", import_marks=[("BR", 2014)], created_at=switch.clock.now)
    )
    await switch.send("BR", samples.reply("Acknowledgement", "BR", fresh.trace_id or "", created_at=switch.clock.now))
    listed = json.loads(tracegate(switch, "traces", "list", "--format", "json"))
    assert {t["trace_id"] for t in listed} == {old.trace_id, fresh.trace_id}
    outgoing = json.loads(
        tracegate(switch, "traces", "list", "--state", "ke", "--role", "outgoing", "--format", "json")
    )
    assert [t["trace_id"] for t in outgoing] == [fresh.trace_id]
    acknowledged = csv.DictReader(
        io.StringIO(tracegate(switch, "traces", "list", "--status", "acknowledged", "--format", "csv"))
    )
    assert [r["trace_id"] for r in acknowledged] == [fresh.trace_id]
    late = json.loads(tracegate(switch, "traces", "list", "--overdue", "--format", "json"))
    assert [t["trace_id"] for t in late] == [old.trace_id]
    assert old.trace_id and old.trace_id in tracegate(switch, "traces", "list")


async def test_show_tells_the_whole_conversation_in_order(switch: Switch) -> None:
    """Request, relays, receipts, an out-of-turn refusal, the restricted response and the deadlines, in order."""
    opened = await switch.send("ZA", samples.trace_request("ZA", **REQUEST))  # type: ignore[arg-type]
    trace_id = opened.trace_id or ""
    await switch.send("ZA", samples.reply("Acknowledgement", "ZA", trace_id))
    await switch.send("MZ", samples.reply("Acknowledgement", "MZ", trace_id))
    await switch.send("MZ", samples.trace_response("MZ", trace_id, restrictions=["tracing-purposes-only"]))
    shown = json.loads(tracegate(switch, "traces", "show", trace_id, "--format", "json"))
    assert shown["trace"]["status"] == "responded"
    assert shown["trace"]["restrictions"] == "tracing-purposes-only"
    steps = [(e["direction"], e["kind"], e["party"], e["outcome"]) for e in shown["conversation"]]
    messages = [s for s in steps if s[0] != "deadline"]
    assert messages == [
        ("in", "TraceRequest", "ZA", "accepted"),
        ("out", "Delivery", "MZ", "sent"),
        ("out", "Receipt", "ZA", "sent"),
        ("in", "Acknowledgement", "ZA", "refused NOT_AUTHORIZED"),
        ("in", "Acknowledgement", "MZ", "accepted"),
        ("out", "Delivery", "ZA", "sent"),
        ("out", "Receipt", "MZ", "sent"),
        ("in", "TraceResponse", "MZ", "accepted"),
        ("out", "Delivery", "ZA", "sent"),
        ("out", "Receipt", "MZ", "sent"),
    ]
    assert sorted(s[3] for s in steps if s[0] == "deadline") == ["cancelled"] * 4
    text = tracegate(switch, "traces", "show", trace_id)
    assert "restrictions: tracing-purposes-only" in text and "respond by" in text


def test_a_file_fault_is_named_as_such_not_as_the_database(tmp_path: Path) -> None:
    """A folder that cannot be made ends the command with that file's error, not with a database one."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the PKI folder should go")
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "pki", "init", "--states", "ZA", "--out", str(blocker / "pki")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "database" not in done.stderr and str(blocker) in done.stderr, done.stderr
