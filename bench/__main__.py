"""``python -m bench [--quick] [--only NAME] [--out FILE]``: run the benchmarks, print the table, write it.

Everything runs offline against the test suite's peers (the Bot API emulator, the Yahoo replay server, the
CSV history) on real SQLite files in a temporary directory.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from bench.report import ROOT, Result, Row, Scale, document, load_average, table

# PTB 22 hands out RetryAfter.retry_after as a timedelta under this flag, as `capgap` sets it.
os.environ.setdefault("PTB_TIMEDELTA", "true")


def benchmarks() -> dict[str, Callable[[Path, Scale], Result]]:
    """The benchmarks by name, in the order of the table (imported here: each loads what it needs)."""
    from bench import commands, delivery, evaluation, startup, upstream

    return {
        evaluation.NAME: evaluation.run,
        evaluation.NAME_10M: evaluation.run_10m,
        upstream.NAME: upstream.run,
        delivery.NAME: delivery.run,
        commands.NAME: commands.run,
        startup.NAME: startup.run,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: proves the harness works in seconds"
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="where the table is written")
    args = parser.parse_args(argv)
    known = benchmarks()
    chosen = args.only or list(known)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(known)}")
    # The replay's ETF files end before its indices' do, which yfinance reports at ERROR on every refresh.
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("yfinance").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module="yfinance")
    scale = Scale(quick=args.quick)
    rows: list[Row] = []
    notes: list[str] = []
    before, started = load_average(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="capgap-bench-") as folder:
        for name in chosen:
            print(f"running {name}…", file=sys.stderr, flush=True)
            result = known[name](Path(folder), scale)
            rows += result.rows
            notes += result.notes
    command = (
        "python -m bench"
        + (" --quick" if args.quick else "")
        + "".join(f" --only {n}" for n in args.only or ())
    )
    print(table(rows))
    args.out.write_text(
        document(
            rows,
            notes,
            command=command,
            load_before=before,
            load_after=load_average(),
            seconds=time.perf_counter() - started,
        )
    )
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
