"""`python -m bench [--db sqlite|postgresql] [--seconds S] [--repeat N]`: tracegate beside the null relay, same run.

Also `python -m bench records` (the register at 1.5 million records), `python -m bench audit` (audit verification
rate), `python -m bench scale` (cost as work grows), `python -m bench chaos` (faults) and `python -m bench hostile`
(normal traffic beside a hostile flood).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path("bench/results")


def _table(figures: dict[str, Any]) -> None:
    """The figures a person reads."""
    print(
        f"tracegate vs the null relay ({figures['db']}, {figures['seconds']:.0f} s each, "
        f"~{figures['body_bytes']} B signed requests, 16 in flight at saturation)"
    )
    sizes = figures.get("outbound_bytes")
    if sizes:
        print(
            f"each answered with a ~{sizes['Delivery']} B Delivery and a ~{sizes['Receipt']} B Receipt "
            "(the null relay publishes the same sizes)"
        )
    rows = [
        ("null relay (broker limit)", f"{figures['null_relay_msgs_per_s']:.0f} msgs/s"),
        ("tracegate", f"{figures['tracegate_msgs_per_s']:.0f} msgs/s"),
        ("ratio tracegate / null relay", f"{figures['ratio']:.3f}"),
        (
            "latency at saturation p50 / p99",
            f"{figures['p50_ms_at_saturation']:.1f} / {figures['p99_ms_at_saturation']:.1f} ms",
        ),
        (
            f"latency at {figures.get('offered_rate', 200):.0f} msgs/s offered p50 / p99",
            f"{figures['p50_ms_at_200']:.1f} / {figures['p99_ms_at_200']:.1f} ms"
            f" ({figures['delivered_at_200']}/{figures['offered_at_200']} "
            "delivered)",
        ),
    ]
    if "null_relay_p50_ms_at_200" in figures:
        rows[3:3] = [
            (
                "null relay latency at saturation p50 / p99",
                f"{figures['null_relay_p50_ms_at_saturation']:.1f} / "
                f"{figures['null_relay_p99_ms_at_saturation']:.1f} ms",
            ),
        ]
        rows.append(
            (
                f"null relay at {figures.get('offered_rate', 200):.0f} msgs/s offered p50 / p99",
                f"{figures['null_relay_p50_ms_at_200']:.1f} / {figures['null_relay_p99_ms_at_200']:.1f} ms",
            )
        )
    cpu = figures.get("cpu_ms_per_message", {})
    null_cpu = figures.get("null_relay_cpu_ms_per_message", {})
    if cpu:
        rows.append(
            (
                "CPU ms per message at saturation",
                f"tracegate {cpu.get('tracegate', 0):.2f}, broker {cpu.get('broker', 0):.2f}, "
                f"harness {cpu.get('harness', 0):.2f} (null relay run: broker {null_cpu.get('broker', 0):.2f}, "
                f"relay + harness {null_cpu.get('relay_and_harness', 0):.2f})",
            )
        )
    for name, value in rows:
        print(f"  {name:<42} {value}")
    print("  CPU per message by stage (profile, ms):")
    for stage, ms in figures["stages_ms_per_message"].items():
        print(f"    {stage:<40} {ms:>8.3f}")
    runs = figures.get("runs", [])
    if runs:
        print("  each run (the medians above are of these):")
        for i, run in enumerate(runs, 1):
            print(
                f"    {i}. {run.get('first', 'null relay')} first: null relay {run['null_relay_msgs_per_s']:.0f}, "
                f"tracegate {run['tracegate_msgs_per_s']:.0f} msgs/s, ratio {run['ratio']:.3f}; saturation p99 "
                f"{run['p99_ms_at_saturation']:.1f} ms; at {run.get('offered_rate', 200):.0f}/s p50/p99 "
                f"{run['p50_ms_at_200']:.1f}/{run['p99_ms_at_200']:.1f} ms; tracegate CPU "
                f"{run.get('cpu_ms_per_message', {}).get('tracegate', 0):.2f} ms/msg"
            )


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One set of figures from several runs: each number the median of the runs (nested ones too); the runs kept."""

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            return {key: merge([v[key] for v in values]) for key in first}
        if isinstance(first, int | float) and not isinstance(first, bool):
            return statistics.median(values)
        return first if all(v == first for v in values) else " / ".join(map(str, values))

    if len(runs) == 1:
        return runs[0]
    return {**merge(runs), "runs": runs}


def main() -> None:
    """Run the benchmark named on the command line (the throughput harness by default)."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="offered load for the fixed-load latency")
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the pair N times; the figures are the medians (a noisy machine)"
    )
    sub = parser.add_subparsers(dest="which")
    audit = sub.add_parser("audit", help="audit records verified per second")
    audit.add_argument("--records", type=int, default=100_000)
    chaos = sub.add_parser("chaos", help="soak and chaos: lost, duplicated, unexpected")
    chaos.add_argument("--messages", type=int, default=3000)
    chaos.add_argument("--kills", type=int, default=3)
    chaos.add_argument("--broker-restarts", type=int, default=1)
    chaos.add_argument("--drops", type=int, default=2)
    hostile = sub.add_parser("hostile", help="normal traffic's p50/p99 alone and while another state floods")
    hostile.add_argument("--requests", type=int, default=500, help="normal requests in each phase")
    hostile.add_argument("--rate", dest="hostile_rate", type=float, default=50.0, help="normal requests per second")
    fairness = sub.add_parser("fairness", help="a quiet state's p50/p99 alone and beside another state's flood")
    fairness.add_argument("--quiet", type=int, default=60)
    fairness.add_argument("--flood", type=int, default=3000)
    scale = sub.add_parser("scale", help="deadline scan at 10k/100k/1M traces; routing with 249 states")
    scale.add_argument("--largest", type=int, default=1_000_000)
    records = sub.add_parser("records", help="the register at 1.5M records: load, lookup plan, queries, trace cost")
    records.add_argument("--db", dest="records_db", choices=["sqlite", "postgresql", "both"], default="both")
    records.add_argument("--records", type=int, default=1_500_000, help="records loaded (10 states' files)")
    records.add_argument("--seconds", dest="records_seconds", type=float, help="each trace-path run (as --seconds)")
    records.add_argument("--repeat", dest="records_repeat", type=int, help="pairs of trace-path runs (as --repeat)")
    records.add_argument("--queries", type=int, default=400, help="RecordQuery round trips timed")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.which == "chaos":
        from bench.chaos import report
        from bench.chaos import run as chaos_run

        report(asyncio.run(chaos_run(args.messages, args.kills, args.broker_restarts, args.drops)))
    elif args.which == "hostile":
        from bench.hostile_load import main as hostile_run
        from bench.hostile_load import report as hostile_report

        runs = [
            asyncio.run(hostile_run(args.requests, args.hostile_rate, flood_first=i % 2 == 1))
            for i in range(max(1, args.repeat))
        ]
        figures = median_of(runs)
        if len(runs) > 1:
            print("medians of the runs above:")
            hostile_report(figures)
        (RESULTS / "hostile.json").write_text(json.dumps(figures, indent=2))
    elif args.which == "fairness":
        from bench.fairness import main as fairness_run

        figures = asyncio.run(fairness_run(args.quiet, args.flood))
        (RESULTS / "fairness.json").write_text(json.dumps(figures, indent=2))
    elif args.which == "scale":
        from bench.scale import main as scale_run

        sizes = tuple(n for n in (10_000, 100_000, 1_000_000) if n <= args.largest)
        (RESULTS / "scale.json").write_text(json.dumps(asyncio.run(scale_run(sizes)), indent=2, default=str))
    elif args.which == "records":
        from bench.records import main as records_run
        from bench.records import table

        dbs = ["sqlite", "postgresql"] if args.records_db == "both" else [args.records_db]
        seconds = args.records_seconds if args.records_seconds is not None else args.seconds
        repeat = max(1, args.records_repeat if args.records_repeat is not None else args.repeat)
        results = asyncio.run(records_run(dbs, args.records, seconds, repeat, args.queries))
        table(results)
        (RESULTS / "records.json").write_text(json.dumps(results, indent=2, default=str))
    elif args.which == "audit":
        from bench.audit_verify import main as audit_run

        figures = asyncio.run(audit_run(args.records))
        (RESULTS / "audit.json").write_text(json.dumps({"records": args.records, "records_per_s": figures}, indent=2))
    else:
        from bench.throughput import main as throughput

        runs = [
            asyncio.run(throughput(args.seconds, args.rate, args.db, tracegate_first=i % 2 == 1))
            for i in range(max(1, args.repeat))
        ]
        result = median_of(runs)
        _table(result)
        (RESULTS / "latest.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
