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
    assert set(dict(figures["routing_us"])) == {"5_states", "249_states"}  # type: ignore[call-overload]


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
    """A short run on `tracegate serve` and the real broker: the normal requests' p50/p99 alone and during the
    flood are both reported, every normal request was delivered, and every flood message was answered with a
    refusal (none accepted). No timing is asserted."""
    from bench.hostile_load import main as hostile

    figures = await hostile(requests=30, rate=60.0)
    for phase in ("baseline", "flood"):
        got = figures[phase]
        assert got["normal"] == got["offered"] == 30, got
        assert got["p99_ms"] >= got["p50_ms"] > 0
    flood = figures["flood"]
    assert flood["flood_sent"] >= 4 and figures["baseline"]["flood_sent"] == 0
    assert flood["flood_refused"] == flood["flood_sent"] and flood["flood_refusal_rate"] == 1.0
    assert flood["flood_accepted"] == flood["flood_unanswered"] == 0
    codes = {part.split()[0] for part in flood["flood_codes"].split(", ")}
    assert codes <= {"FORBIDDEN_XML", "SIGNATURE_INVALID"}, flood["flood_codes"]
    sizes = figures["flood_bytes"]
    assert sizes["ns-root-inclusive"] > 100_000 and sizes["large-forgery"] > 65_536  # the off-loop path too


def test_repeated_hostile_runs_are_summarised_by_their_medians() -> None:
    """`python -m bench --repeat N hostile`: the runs' figures merge (every key in each run, the codes as text)."""
    from bench.__main__ import median_of

    def run(p99: float, first: str) -> dict[str, object]:
        phase = {"p50_ms": 10.0, "p99_ms": p99, "flood_sent": 5, "flood_codes": "FORBIDDEN_XML 5"}
        return {"baseline": phase, "flood": {**phase, "p99_ms": 2 * p99}, "first": first}

    summary = median_of([run(20.0, "baseline"), run(40.0, "flood"), run(30.0, "baseline")])
    assert summary["baseline"]["p99_ms"] == 30.0 and summary["flood"]["p99_ms"] == 60.0
    assert summary["flood"]["flood_codes"] == "FORBIDDEN_XML 5"
