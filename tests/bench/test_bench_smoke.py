"""The benchmarks run (briefly) so they cannot rot; no timing is asserted."""

from __future__ import annotations

from bench.audit_verify import main as audit_bench


async def test_audit_benchmark_runs_and_reports_each_pass() -> None:
    """A 3,000-record chain is built and verified three ways, each giving a rate."""
    figures = await audit_bench(3_000)
    assert len(figures) == 3 and all(rate > 0 for rate in figures.values())
