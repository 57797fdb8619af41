"""Benchmark 4: command latency when 100 chats ask at once, against an echo handler in the same bot.

The real Application (``bot.app.build_app`` with every handler, the guard included) long-polls the test
suite's Bot API emulator, running in its own process (``bench.peers``). For each command, 100 chats send it
in the same instant; a chat's latency runs from its update being queued at the emulator to the bot's reply
being recorded there, so it holds the poll, the handler and the reply. The echo handler (``/echo``, added
ahead of the command families) replies with the text it got: PTB's and the emulator's share of the time.
The cache is warm (the CSV history as at the 18 January 2024 close) and each command runs once before it
is measured. Every burst uses chats that sent nothing before, so the guard's flood limit never answers.

Latency with 100 chats at once is mostly queueing behind the other 99 on the bot's one core, so it is
judged against the echo handler's, measured in the same run; so is the CPU the bot process spends per
request (``time.process_time`` around each burst: the emulator runs in a process of its own). Last,
``capgap ask "/standing"`` is timed as a process, as at the 18 January 2024 close.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from telegram import Update
from telegram.ext import CommandHandler, ContextTypes

from bench.peers import EmulatorProcess
from bench.report import Result, Row, Scale, median, ms, peak_mb, percentile, reset_peak, times
from bench.startup import capgap
from bench.world import MARKET, csv_services, fresh_db
from bot.app import build_app
from testing.world import AS_OF, TEST_TOKEN, start_bot, stop_bot

NAME = "commands"
COMMANDS = ("/standing", "/etf", "/gap", "/target 3000", "/chart")
# A cached answer's share of the bot's CPU against the echo handler's, and its p99 against echo's p99.
CPU_RATIO_TARGET = 1.3
ECHO_RATIO_TARGET = 3.0
CHART_P99_TARGET = 0.400
ASK_TARGET = 0.8


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is not None and message.text:
        await context.bot.send_message(message.chat_id, message.text)


def run(workdir: Path, scale: Scale) -> Result:
    chats: int = scale.pick(10, 100)  # type: ignore[assignment]
    rounds: int = scale.pick(1, 5)  # type: ignore[assignment]
    serial: int = scale.pick(3, 20)  # type: ignore[assignment]
    result = Result()
    asyncio.run(_measure(workdir, chats, rounds, serial, result))
    _ask(workdir, scale.pick(2, 10), result)  # type: ignore[arg-type]
    return result


async def _measure(workdir: Path, chats: int, rounds: int, serial: int, result: Result) -> None:
    fresh_ids: Iterator[int] = itertools.count(3_000_000_000)
    latencies: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}  # the bot's CPU seconds per request
    alone: dict[str, list[float]] = {}
    async with EmulatorProcess() as emulator:
        services = csv_services(fresh_db(workdir, "commands"), api_root=emulator.api_root)
        application = build_app(services.config, services, schedule=False)
        application.add_handler(CommandHandler("echo", echo))
        application.handlers[0].insert(0, application.handlers[0].pop())  # ahead of the unknown-command reply
        await start_bot(application)
        try:
            await emulator.wait("setMyCommands")
            reset_peak()
            for text in ("/echo ping", *COMMANDS):
                await emulator.burst([next(fresh_ids) for _ in range(chats)], text)  # warm-up
                latencies[text] = []
                # A chart takes a fifth of a second of the one core: one round of 100 is already 20 s.
                spent = time.process_time()
                for _ in range(1 if text == "/chart" else rounds):
                    latencies[text] += await emulator.burst([next(fresh_ids) for _ in range(chats)], text)
                cpu[text] = (time.process_time() - spent) / len(latencies[text])
                alone[text] = [(await emulator.burst([next(fresh_ids)], text))[0] for _ in range(serial)]
            peak = peak_mb()
        finally:
            await stop_bot(application)
    echo_p50, echo_p99 = median(latencies["/echo ping"]), percentile(latencies["/echo ping"], 0.99)
    size = f"{chats} chats at once × {rounds} rounds"
    chart_size = f"{chats} chats at once × 1 round"
    result.rows.append(
        Row(
            NAME,
            "/echo (the baseline: PTB, the emulator, the reply)",
            size,
            ms(echo_p50),
            ms(echo_p99),
            peak,
            f"1× (CPU {ms(cpu['/echo ping'])}/request)",
        )
    )
    for text in COMMANDS:
        p50, p99 = median(latencies[text]), percentile(latencies[text], 0.99)
        cpu_ratio = cpu[text] / cpu["/echo ping"]
        if text == "/chart":
            target, met = f"p99 ≤ {ms(CHART_P99_TARGET)}", p99 <= CHART_P99_TARGET
        else:
            target = f"CPU ≤ {CPU_RATIO_TARGET:g}× echo, p99 ≤ {ECHO_RATIO_TARGET:g}× echo"
            met = cpu_ratio <= CPU_RATIO_TARGET and p99 <= ECHO_RATIO_TARGET * echo_p99
        result.rows.append(
            Row(
                NAME,
                f"{text} latency",
                chart_size if text == "/chart" else size,
                ms(p50),
                ms(p99),
                None,
                f"CPU {ms(cpu[text])}/request = {cpu_ratio:.2f}× echo; "
                f"p50 {times(p50 / echo_p50)}, p99 {times(p99 / echo_p99)} echo",
                target,
                met,
            )
        )
    one_by_one = ", ".join(f"{text} {ms(median(alone[text]))}" for text in ("/echo ping", *COMMANDS))
    result.notes.append(
        f"Commands: one chat at a time ({serial} requests each), the median latencies are: {one_by_one}. "
        f"With {chats} at once, a request also waits for the ones ahead of it on the bot's one core."
    )


def _ask(workdir: Path, runs: int, result: Result) -> None:
    """``capgap ask "/standing"`` as a user runs it on the bundled history: a process from start to exit."""
    environment = os.environ | {
        "CAPGAP_MARKET": MARKET,
        "CAPGAP_AS_OF": AS_OF.isoformat(),
        "CAPGAP_DB": str(workdir / "ask" / "capgap.db"),
        "CAPGAP_TELEGRAM_TOKEN": TEST_TOKEN,
    }
    walls = []
    for _ in range(runs + 1):  # the first fills the OS page cache and is left out
        started = time.perf_counter()
        done = subprocess.run(
            [*capgap(), "ask", "/standing"], env=environment, capture_output=True, text=True, check=True
        )
        walls.append(time.perf_counter() - started)
        if "Russell 2000 vs S&P 500" not in done.stdout:
            raise RuntimeError(f"capgap ask answered something else: {done.stdout[:200]!r}")
    walls = walls[1:]
    p50, p99 = median(walls), percentile(walls, 0.99)
    result.rows.append(
        Row(
            NAME,
            '`capgap ask "/standing"` wall time (CAPGAP_MARKET=csv, as of the 18 Jan 2024 close)',
            f"{runs} runs",
            ms(p50),
            ms(p99),
            None,
            "—",
            f"≤ {ms(ASK_TARGET)}",
            p50 <= ASK_TARGET,
        )
    )
