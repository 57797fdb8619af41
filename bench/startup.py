"""Benchmark 5: start-up time and memory of the real ``capgap`` command.

``capgap --help`` is timed as a process, and checked not to import pandas. ``capgap run`` starts against the
Bot API emulator (in its own process) on a warm cache, the CSV history as at the 18 January 2024 close; it
is ready when the emulator has seen ``setMyCommands`` and the first long poll held open. With a million
rules it starts twice: first reading them from SQLite, then (as every restart does) from the snapshot its
first shutdown left. Its resident memory is read from ``/proc`` once it is idle (its CPU time stops growing).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from alerts.engine import observe
from bench.peers import EmulatorProcess
from bench.population import KEYS, populate
from bench.report import Result, Row, Scale, median, ms, peak_mb, percentile, rss_mb
from bench.world import close_moment, csv_services, fresh_db
from testing.world import AS_OF, SHARED_DATA, TEST_TOKEN

NAME = "startup"
HELP_TARGET = 0.3
READY_TARGET = 3.0
MEMORY_TARGET_MB = 400.0
RESTART_TARGET = 1.0  # CPU seconds a million rules may add to a start


def capgap() -> list[str]:
    """The installed ``capgap`` script, or the module when the package is not installed."""
    script = Path(sys.executable).with_name("capgap")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "bot.cli"]


def run(workdir: Path, scale: Scale) -> Result:
    result = Result()
    _help(scale, result)
    asyncio.run(_runs(workdir, scale, result))
    return result


def _help(scale: Scale, result: Result) -> None:
    runs: int = scale.pick(2, 10)  # type: ignore[assignment]
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*capgap(), "--help"], check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    imports = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "bot.cli", "--help"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    heavy = sorted({name for name in ("pandas", "numpy", "yfinance", "telegram") if f"| {name}\n" in imports})
    met = median(walls) <= HELP_TARGET and "pandas" not in heavy
    result.rows.append(
        Row(
            NAME,
            "`capgap --help` wall time",
            f"{runs} runs; imports: {', '.join(heavy) or 'no pandas, numpy, yfinance or telegram'}",
            ms(median(walls)),
            ms(percentile(walls, 0.99)),
            None,
            "—",
            f"≤ {ms(HELP_TARGET)}, no pandas",
            met,
        )
    )


async def _runs(workdir: Path, scale: Scale, result: Result) -> None:
    runs: int = scale.pick(1, 3)  # type: ignore[assignment]
    rules: int = scale.pick(3_000, 1_000_000)  # type: ignore[assignment]
    idle = fresh_db(workdir, "startup-idle")
    loaded = fresh_db(workdir, "startup-rules")
    services = csv_services(loaded)
    snapshot, created = services.market.snapshot, close_moment()
    observed, _ = observe(snapshot, created, set(KEYS))
    current = {key: observed[key].value if key in observed else 40.0 for key in KEYS}
    high = {s: float(snapshot.closes[s].max()) for s in ("^RUT", "^GSPC")}
    population = populate(services.alerts, rules, current, all_time_high=high, created=created)
    services.market.cache.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    services.close()

    async with EmulatorProcess() as emulator:
        ready, memory = [], []
        for _ in range(runs):
            started = await _start(emulator.api_root, idle, emulator)
            ready.append(started)
            memory.append((started.rss, started.peak))
        # The first start after the rules were written around the bot reads them from SQLite; its
        # shutdown leaves the rules snapshot, which every later start reads instead (a restart, an upgrade).
        first = await _start(emulator.api_root, loaded, emulator)
        restarts = [await _start(emulator.api_root, loaded, emulator) for _ in range(runs)]
    result.rows.append(
        Row(
            NAME,
            "`capgap run` to ready (setMyCommands and the first long poll), warm cache",
            f"{runs} runs, no rules",
            ms(median([r.seconds for r in ready])),
            ms(percentile([r.seconds for r in ready], 0.99)),
            max(p for _, p in memory),
            "—",
            f"≤ {READY_TARGET:g} s",
            median([r.seconds for r in ready]) <= READY_TARGET,
            cpu=ms(median([r.cpu for r in ready])),
        )
    )
    result.rows.append(
        Row(
            NAME,
            f"`capgap run` to ready with {population.rows:,} rules, first start (rules read from SQLite)",
            "1 run",
            ms(first.seconds),
            "—",
            first.peak,
            "—",
            cpu=ms(first.cpu),
        )
    )
    restart_cpu = median([r.cpu for r in restarts])
    rules_cpu = restart_cpu - median([r.cpu for r in ready])  # what the rules add to a start
    result.rows.append(
        Row(
            NAME,
            f"`capgap run` to ready with {population.rows:,} rules, restart (rules from their snapshot)",
            f"{runs} runs",
            ms(median([r.seconds for r in restarts])),
            ms(percentile([r.seconds for r in restarts], 0.99)),
            max(r.peak for r in restarts),
            f"the rules add {ms(rules_cpu)} CPU to a start without any (the first start: "
            f"{ms(first.cpu - median([r.cpu for r in ready]))})",
            f"rules ≤ {RESTART_TARGET:g} s CPU",
            rules_cpu <= RESTART_TARGET if rules >= 1_000_000 else None,
            cpu=ms(restart_cpu),
        )
    )
    idle_rss = median([r for r, _ in memory])
    result.rows.append(
        Row(
            NAME,
            "resident memory, idle (`capgap run`, no rules)",
            "after start-up",
            "—",
            f"{idle_rss:,.0f} MB",
            None,
            "—",
        )
    )
    loaded_rss = median([r.rss for r in restarts])
    result.rows.append(
        Row(
            NAME,
            f"resident memory with {population.rows:,} rules loaded (`capgap run`, idle)",
            "after a restart and the start-up evaluation of every rule",
            "—",
            f"{loaded_rss:,.0f} MB",
            max(r.peak for r in restarts),
            f"{loaded_rss - idle_rss:+,.0f} MB over idle",
            f"≤ {MEMORY_TARGET_MB:,.0f} MB",
            loaded_rss <= MEMORY_TARGET_MB if rules >= 1_000_000 else None,
        )
    )
    result.notes.append(
        "Start-up: `capgap run` is the installed script with CAPGAP_MARKET=csv:<shared/data> and "
        f"CAPGAP_AS_OF={AS_OF} (a cache that is current for that close, so nothing is fetched); CPU is the "
        "process's user and system time when it is ready; resident memory is read once the process is idle, "
        "after the start-up evaluation of every rule; peak memory is its VmHWM. Each run ends with SIGTERM, "
        "as a supervisor stops it: the shutdown checkpoint writes the rules snapshot the restarts read."
    )


@dataclass(frozen=True)
class Started:
    seconds: float  # wall time to ready
    cpu: float  # the process's CPU seconds when ready
    rss: float  # MB once idle
    peak: float  # MB, VmHWM


async def _start(api_root: str, db: Path, emulator: EmulatorProcess) -> Started:
    """Start ``capgap run``, wait until it is ready and then idle, stop it with SIGTERM."""
    env = {
        **os.environ,
        "CAPGAP_TELEGRAM_TOKEN": TEST_TOKEN,
        "CAPGAP_TELEGRAM_API": api_root,
        "CAPGAP_DB": str(db),
        "CAPGAP_MARKET": f"csv:{SHARED_DATA}",
        "CAPGAP_AS_OF": AS_OF.isoformat(),
        "CAPGAP_LOG_LEVEL": "WARNING",
    }
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *capgap(), "run", env=env, cwd=db.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        commands = await emulator.wait("setMyCommands", within=300)
        polling = await emulator.polling(within=60)
        cpu = _cpu_seconds(process.pid)
        seconds = max(commands, polling) - started
        await _until_idle(process.pid)
        return Started(seconds, cpu, rss_mb(process.pid), peak_mb(process.pid))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 60)
        except TimeoutError:
            process.kill()
            await process.wait()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _until_idle(pid: int, limit: float = 120.0) -> None:
    """Wait until the process's CPU time stops growing for a second (its start-up jobs are done)."""
    deadline = time.monotonic() + limit
    last = -1.0
    while time.monotonic() < deadline:
        cpu = _cpu_seconds(pid)
        if cpu - last < 0.02:
            return
        last = cpu
        await asyncio.sleep(1.0)
