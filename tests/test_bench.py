"""The benchmark harness still runs end to end: `python -m bench --quick` fills a table row for every
benchmark. Figures are not checked: timings belong in BENCHMARKS.md, not in assertions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_ROWS = (
    "rules loaded from SQLite",
    "evaluate(): the vectorised pass alone",
    "refresh: run_refresh",
    "upstream requests per refresh",
    "outbox drained at Telegram's limit",
    "outbox drained with the limit raised",
    "/echo (the baseline",
    "/standing latency",
    "/etf latency",
    "/gap latency",
    "/target 3000 latency",
    "/chart latency",
    '`capgap ask "/standing"` wall time',
    "`capgap --help` wall time",
    "`capgap run` to ready",
    "resident memory, idle",
    "resident memory with",
)


def test_quick_run_writes_a_table_with_every_benchmark_row(tmp_path: Path) -> None:
    """A subprocess, as a user runs it: its own event loops, peers and temporary files."""
    out = tmp_path / "BENCHMARKS.md"
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    written = out.read_text()
    assert "| what | size | median | CPU median | p99 or throughput |" in written
    assert "cores" in written and "Load average" in written
    for row in EXPECTED_ROWS:
        assert f"| {row}" in written, row
        assert f"| {row}" in finished.stdout, row


def test_an_unknown_benchmark_name_is_a_usage_error() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "nosuch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 2
    assert "unknown benchmark nosuch" in finished.stderr
