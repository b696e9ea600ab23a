"""The records-register benchmark runs (briefly, on SQLite) so it cannot rot; no timing is asserted."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

import bench.__main__ as bench_main
from bench.records import look_alike, serial, written_otherwise
from gateway.records.matching import serial_key, shape_key

ROWS = (
    "records loaded",
    "load, whole",
    "import peak RSS",
    "lookup plan",
    "RecordQuery round trip p50 / p99",
    "present: exact / probable found",
    "absent: answered with a match",
    "trace path, register empty",
    "trace path, 2,000 records",
    "ratio loaded / empty",
    "cost of the check",
    "gateway CPU ms/msg",
    "at 100 msgs/s p50 / p99, empty",
    "at 100 msgs/s p50 / p99, loaded",
    "hits in the loaded runs",
    "sqlite: plan of the candidates query, 1 shape key",
    "sqlite: plan of the candidates query, 16 shape keys",
    "sqlite: plan of the candidates query, 64 shape keys",
    "sqlite: run 1 (empty first)",
)


def test_generated_serials_and_their_variants_match_as_the_bench_expects() -> None:
    """Another clerk's writing of a serial is the same serial; a look-alike misreading has the same shape only."""
    rng = random.Random(5)
    for _ in range(500):
        written = serial(rng)
        assert serial_key(written_otherwise(written)) == serial_key(written)
        misread = look_alike(written)
        if misread is not None:
            assert serial_key(misread) != serial_key(written) and shape_key(misread) == shape_key(written)


def test_records_bench_prints_every_row_and_probes_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m bench records` at a tiny size on SQLite: the real imports, the plan, RecordQuery round trips and a
    pair of trace-path runs. Every row of the table is printed, the lookup is an index probe of `ix_records_shape`,
    every import took its rows, every query found what it should, and both trace-path runs delivered."""
    monkeypatch.setattr(bench_main, "RESULTS", tmp_path)
    argv = ["bench", "records", "--db", "sqlite", "--records", "2000", "--seconds", "1", "--queries", "40"]
    monkeypatch.setattr(sys, "argv", argv)
    bench_main.main()
    printed = capsys.readouterr().out
    for row in ROWS:
        assert row in printed, (row, printed)
    assert "SEARCH records USING INDEX ix_records_shape" in printed, printed
    assert "NOT A PROBE" not in printed
    (figures,) = json.loads((tmp_path / "records.json").read_text())
    assert figures["db"] == "sqlite"
    assert figures["records"] == 2000 and figures["load"]["refused"] == 0
    assert len(figures["load"]["imports"]) == 10 and all(i["peak_rss_mb"] > 0 for i in figures["load"]["imports"])
    query = figures["query"]
    assert query["present"] == query["absent"] == 20
    assert query["found"]["missed"] == query["found"]["wrong_score"] == 0
    assert query["found"]["exact"] > 0 and query["found"]["probable"] > 0
    assert query["p99_ms"] >= query["p50_ms"] > 0
    assert all(figures["uses_index"].values()) and len(figures["plans"]) == 3
    assert figures["empty_msgs_per_s"] > 0 and figures["full_msgs_per_s"] > 0
    assert figures["hits"] > 0  # the 1 % of trace requests naming a recorded firearm made hits
