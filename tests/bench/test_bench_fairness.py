"""The fairness benchmark runs (briefly) so it cannot rot; no timing is asserted."""

from __future__ import annotations

from bench.fairness import main as fairness


async def test_fairness_benchmark_reports_the_quiet_state_alone_and_beside_a_flood() -> None:
    """A short run: the quiet state's p50/p99 alone and beside the flood are both reported, every quiet request
    and the whole flood answered."""
    figures = await fairness(quiet=10, flood=200, rate=20.0)
    for phase in ("alone", "beside_flood"):
        got = figures[phase]
        assert got["answered"] == got["sent"] == 10
        assert got["p99_ms"] >= got["p50_ms"] > 0
    assert figures["flood"] == 200 and figures["flood_drain_s"] > 0
