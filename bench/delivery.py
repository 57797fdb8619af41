"""Benchmark 3: draining the outbox to Telegram, paced at Telegram's limit and with the limit raised.

The real Application (``bot.app.build_app``: its request class, ``AIORateLimiter`` and the delivery
``Pacer``) runs the scheduler's own delivery job (``bot.jobs.deliver``) against the test suite's Bot API
emulator, which enforces Telegram's flood limits (30 messages a second, one a second per chat) in the
paced run and answers an excess send 429. Pending notifications are queued for distinct chats in a real
SQLite outbox. The emulator runs in its own process (``bench.peers``), as Telegram's servers are not on
the bot's core.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC
from pathlib import Path
from types import SimpleNamespace

from bench.peers import EmulatorProcess
from bench.report import Result, Row, Scale, peak_mb, reset_peak
from bench.world import csv_services, fresh_db
from bot import jobs
from bot.app import build_app

NAME = "delivery"
CHAT_BASE = 2_000_000_000
TEXT = (
    "🔔 <b>RUT above 2,000 · live · band 1%</b>\n"
    "Russell 2000 rose to 2,000.00 or more: <b>2,001.23</b> (live, 19 Jan 2024 10:35 ET · Yahoo Finance)\n"
    "today +1.02% · 18.1% below its high of 2,442.74 · ≈ $198.30 a share of IWM\n"
    "<i>/delete {n} to stop it</i>"
)
TELEGRAM_RATE = 30


def run(workdir: Path, scale: Scale) -> Result:
    paced: int = scale.pick(60, 1_500)  # type: ignore[assignment]
    fast: int = scale.pick(200, 10_000)  # type: ignore[assignment]
    result = Result()
    asyncio.run(_both(workdir, paced, fast, result))
    return result


async def _both(workdir: Path, paced: int, fast: int, result: Result) -> None:
    outcome = await _drain(workdir / "delivery-paced", paced, TELEGRAM_RATE)
    met = (
        outcome["rate"] >= 0.95 * TELEGRAM_RATE
        and outcome["lost"] == 0
        and outcome["duplicated"] == 0
        and outcome["429"] == 0
    )
    result.rows.append(
        Row(
            NAME,
            f"outbox drained at Telegram's limit (CAPGAP_RATE_LIMIT={TELEGRAM_RATE}, emulator enforcing it)",
            f"{paced:,} messages to {paced:,} chats",
            "—",
            f"{outcome['rate']:.1f} msg/s; lost {outcome['lost']}, duplicated {outcome['duplicated']}, "
            f"429s {outcome['429']}",
            outcome["peak"],
            f"{outcome['rate'] / TELEGRAM_RATE:.1%} of the limit",
            "≥ 28.5 msg/s (95%); 0 lost, duplicated, 429",
            met,
        )
    )
    outcome = await _drain(workdir / "delivery-fast", fast, 0)
    result.rows.append(
        Row(
            NAME,
            "outbox drained with the limit raised (CAPGAP_RATE_LIMIT=0): the sender's ceiling",
            f"{fast:,} messages to {fast:,} chats",
            "—",
            f"{outcome['rate']:,.0f} msg/s ({outcome['cpu']:,.0f} per CPU-second); lost {outcome['lost']}, "
            f"duplicated {outcome['duplicated']}",
            outcome["peak"],
            f"{outcome['rate'] / TELEGRAM_RATE:,.0f}× Telegram's limit",
            "≥ 1,000 msg/s",
            outcome["rate"] >= 1000 and outcome["lost"] == 0 and outcome["duplicated"] == 0,
        )
    )
    result.notes.append(
        f"Delivery: the paced run sends {paced:,} messages (about {paced / TELEGRAM_RATE:.0f} s at 30/s; the "
        "full 10,000 would take 333 s and measure the same steady rate). Rates are accepted sends over the "
        'time between the first and the last, as the emulator recorded them; "per CPU-second" is the '
        "bot process's own CPU, the ceiling on a quiet core."
    )


async def _drain(folder: Path, count: int, rate_limit: int) -> dict[str, float]:
    async with EmulatorProcess() as emulator:
        if rate_limit:
            await emulator.limits(
                global_per_second=TELEGRAM_RATE, per_chat_per_second=1, per_group_per_minute=20
            )
        db = fresh_db(folder.parent, folder.name)
        services = csv_services(db, wall_clock=True, rate_limit=rate_limit, api_root=emulator.api_root)
        store = services.alerts
        now = services.now().astimezone(UTC).isoformat()  # due by the bot's own clock
        with store.db.atomic():
            store.db.conn.executemany(
                "INSERT INTO outbox (chat_id, text, kind, created_at, due_at, attempts, status) "
                "VALUES (?, ?, 'alert', ?, ?, 0, 'pending')",
                [(CHAT_BASE + n, TEXT.format(n=n + 1), now, now) for n in range(count)],
            )
        application = build_app(services.config, services, schedule=False)
        await application.initialize()
        try:
            context = SimpleNamespace(application=application, bot=application.bot)
            first, _ = await emulator.calls()
            reset_peak()
            cpu = time.process_time()
            deadline = time.monotonic() + max(120.0, 3 * count / (rate_limit or 1000))
            # The job drains what is due; a 429 postpones a row, so run it again until nothing is pending.
            while store.outbox.backlog()[0] and time.monotonic() < deadline:
                await jobs.deliver(context)
                if store.outbox.backlog()[0]:
                    await asyncio.sleep(0.5)
            cpu = time.process_time() - cpu
            peak = peak_mb()
            _, calls = await emulator.calls(first, ("sendMessage",))
            stats = await emulator.stats()
        finally:
            await application.shutdown()
            services.close()
    accepted = [call for call in calls if call[3] == 200]
    per_chat = Counter(call[1] for call in accepted)
    moments = sorted(call[2] for call in accepted)
    span = moments[-1] - moments[0] if len(moments) > 1 else 0.0
    return {
        "rate": (len(moments) - 1) / span if span else 0.0,
        "cpu": len(accepted) / cpu if cpu else 0.0,
        "lost": count - len(per_chat),
        "duplicated": sum(n - 1 for n in per_chat.values()),
        "429": int(stats["too_many_requests"]),
        "peak": peak,
    }
