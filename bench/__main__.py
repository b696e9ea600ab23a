"""`python -m bench [audit] [--records N]`: the project's benchmarks, each printing figures beside a baseline."""

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
    args = parser.parse_args()
    if args.which == "audit":
        from bench.audit_verify import main as run

        figures = asyncio.run(run(args.records))
        out = Path("bench/results/audit.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"records": args.records, "records_per_s": figures}, indent=2))


if __name__ == "__main__":
    main()
