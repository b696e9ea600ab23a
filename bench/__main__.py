"""`python -m bench audit|chaos ...`: the project's benchmarks, each printing figures beside a baseline."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path


def main() -> None:
    """Run the benchmark named on the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="which", required=True)
    audit = sub.add_parser("audit", help="audit records verified per second")
    audit.add_argument("--records", type=int, default=100_000)
    chaos = sub.add_parser("chaos", help="soak and chaos: lost, duplicated, unexpected")
    chaos.add_argument("--messages", type=int, default=3000)
    chaos.add_argument("--kills", type=int, default=3)
    chaos.add_argument("--broker-restarts", type=int, default=1)
    chaos.add_argument("--drops", type=int, default=2)
    args = parser.parse_args()
    if args.which == "chaos":
        from bench.chaos import report
        from bench.chaos import run as chaos_run

        report(asyncio.run(chaos_run(args.messages, args.kills, args.broker_restarts, args.drops)))
        return
    if args.which == "audit":
        from bench.audit_verify import main as run

        figures = asyncio.run(run(args.records))
        out = Path("bench/results/audit.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"records": args.records, "records_per_s": figures}, indent=2))


if __name__ == "__main__":
    main()
