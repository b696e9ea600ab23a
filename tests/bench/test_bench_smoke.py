"""The benchmarks run (briefly) so they cannot rot; no timing is asserted."""

from __future__ import annotations

import pytest

from bench.audit_verify import main as audit_bench
from bench.scale import main as scale_bench
from bench.throughput import main as throughput


async def test_audit_benchmark_runs_and_reports_each_pass() -> None:
    """A 3,000-record chain is built and verified three ways, each giving a rate."""
    figures = await audit_bench(3_000)
    assert len(figures) == 3 and all(rate > 0 for rate in figures.values())


async def test_scale_benchmark_uses_the_index() -> None:
    """The deadline scan runs on its index (the plan says so) and routing is timed with all 249 states."""
    figures = await scale_bench((10_000,))
    scan = figures["deadline_scan_ms_10000"]
    assert "USING INDEX ix_deadlines_pending" in scan["plan"]  # type: ignore[index]
    assert set(figures["routing_us"]) == {"5_states", "249_states"}  # type: ignore[arg-type]


@pytest.mark.parametrize("tracegate_first", [False, True], ids=["null-relay-first", "tracegate-first"])
async def test_throughput_harness_runs_briefly(tracegate_first: bool) -> None:
    """Two seconds of each run, in either order: every figure of latest.json is there and tracegate delivered
    something."""
    figures = await throughput(seconds=2, rate=50, db="sqlite", tracegate_first=tracegate_first)
    assert figures["first"] == ("tracegate" if tracegate_first else "null relay")
    for key in ("null_relay_msgs_per_s", "tracegate_msgs_per_s", "ratio", "p50_ms_at_200", "p99_ms_at_200", "db"):
        assert key in figures
    assert figures["tracegate_msgs_per_s"] > 0 and figures["null_relay_msgs_per_s"] > 0
    stages = figures["stages_ms_per_message"]
    assert set(stages) >= {"parse", "xsd", "verify", "decide", "sign", "store writes", "publish", "whole pipeline"}
    assert all(ms > 0 for ms in stages.values()), stages
    assert stages["whole pipeline"] > stages["verify"] + stages["sign"]  # the whole holds its parts
    assert figures["cpu_ms_per_message"]["tracegate"] > 0  # the gateway process worked for what it delivered
    assert set(figures["null_relay_cpu_ms_per_message"]) == {"broker", "relay_and_harness"}
    # The null relay's latency floor is measured beside tracegate's, with outbound messages of the switch's sizes.
    assert figures["null_relay_p50_ms_at_200"] > 0 and figures["null_relay_p99_ms_at_saturation"] > 0
    sizes = figures["outbound_bytes"]
    assert set(sizes) == {"Delivery", "Receipt"} and sizes["Delivery"] > figures["body_bytes"] > sizes["Receipt"] > 0


def test_repeated_runs_are_summarised_by_their_medians() -> None:
    """`--repeat`: each figure, nested ones too, is the median of the runs; the runs are kept beside them."""
    from bench.__main__ import median_of

    runs = [
        {"ratio": 0.3, "stages_ms_per_message": {"sign": 1.0}, "db": "sqlite", "first": "null relay"},
        {"ratio": 0.5, "stages_ms_per_message": {"sign": 3.0}, "db": "sqlite", "first": "tracegate"},
        {"ratio": 0.4, "stages_ms_per_message": {"sign": 9.0}, "db": "sqlite", "first": "null relay"},
    ]
    summary = median_of(runs)
    assert summary["ratio"] == 0.4 and summary["stages_ms_per_message"] == {"sign": 3.0}
    assert summary["db"] == "sqlite" and summary["runs"] == runs
    assert summary["first"] == "null relay / tracegate / null relay"  # the order alternates


async def test_hostile_load_benchmark_reports_both_phases_and_refuses_the_flood() -> None:
    """A short run: both phases give their p50/p99, and every flood message was refused (none accepted)."""
    from bench.hostile_load import main as hostile

    figures = await hostile(requests=40, rate=80.0)
    assert figures["baseline"]["normal"] == figures["flood"]["normal"] == 40
    assert all(figures[p]["p99_ms"] >= figures[p]["p50_ms"] > 0 for p in ("baseline", "flood"))
    got = figures["flood"]["flood"]
    assert got and set(got) <= {"FORBIDDEN_XML", "SIGNATURE_INVALID"} and "accepted" not in got
