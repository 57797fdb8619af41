"""/history, /export with several rules pasted back to /alert, and /pause 3d (a snooze), through the real bot
and the Bot API emulator; the market moves on the real history and the clock is the tests' own."""

from __future__ import annotations

import asyncio
import csv
import html
import re
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from telegram.ext import CallbackContext

from bot import jobs
from bot.app import build_app
from bot.services import Services, build_services
from market.csv_source import CsvSource
from testing.world import SHARED_DATA
from tests.conftest import DirectBot, FakeClock, advance_market, after_close

CHAT = 3030
RULE_ROW = "SELECT group_id, spec, key, kind, level, band, mode, once, paused, expires_at FROM rules "


def close_on(stem: str, day: date) -> float:
    with (SHARED_DATA / f"{stem}_daily.csv").open() as f:
        return next(float(r["close"]) for r in csv.DictReader(f) if r["date"] == day.isoformat())


async def judge_and_deliver(bot: DirectBot) -> None:
    """The evaluation job, then the delivery it starts, to the end."""
    await jobs.evaluate_alerts(CallbackContext(bot.application))  # type: ignore[arg-type]
    for task in [t for t in asyncio.all_tasks() if t.get_name() == "deliver"]:
        await task


async def reply(bot: DirectBot, text: str, chat_id: int = CHAT) -> str:
    (answer,) = await bot.replies(chat_id, text)
    return answer


def rules_of(services: Services, chat_id: int = CHAT) -> list[tuple[Any, ...]]:
    return services.alerts.db.execute(RULE_ROW + "WHERE chat_id = ? ORDER BY rule_id", [chat_id]).fetchall()


# --- /history -----------------------------------------------------------------------------------------


async def test_history_lists_the_alerts_sent_newest_first_in_the_chats_zone(
    direct_bot: DirectBot, clock: FakeClock
) -> None:
    bot, services = direct_bot, direct_bot.services
    assert "No alert has been sent to you yet" in await reply(bot, "/history")
    await reply(bot, "/tz Europe/Berlin")
    await reply(bot, "/alert rut above 1940 close\nspx above 4800 close\nrut above 1980 close")

    jan19, jan22 = date(2024, 1, 19), date(2024, 1, 22)
    advance_market(services, clock, jan19)  # RUT and SPX cross 1,940 and 4,800: one message, two alerts
    await judge_and_deliver(bot)
    advance_market(services, clock, jan22)  # RUT crosses 1,980
    await judge_and_deliver(bot)
    assert len([m for m in bot.emulator.sent_to(CHAT) if "🔔" in (m.plain_text or "")]) == 2

    lines = html.unescape(re.sub(r"</?b>", "", await reply(bot, "/history"))).splitlines()

    berlin = ZoneInfo("Europe/Berlin")
    sent19, sent22 = (after_close(d).astimezone(berlin) for d in (jan19, jan22))
    assert lines[0] == "The last 3 alerts sent, newest first (times in Europe/Berlin; /tz changes it)"
    assert lines[1] == (
        f"22 Jan 2024 {sent22:%H:%M} CET · RUT above 1,980 — Russell 2000 rose to 1,980.00 or more: "
        f"{close_on('RUT', jan22):,.2f}"
    )
    assert {lines[2], lines[3]} == {
        f"19 Jan 2024 {sent19:%H:%M} CET · RUT above 1,940 — Russell 2000 rose to 1,940.00 or more: "
        f"{close_on('RUT', jan19):,.2f}",
        f"19 Jan 2024 {sent19:%H:%M} CET · SPX above 4,800 — S&P 500 rose to 4,800.00 or more: "
        f"{close_on('GSPC', jan19):,.2f}",
    }
    assert "No alert has been sent to you yet" in await reply(bot, "/history", chat_id=CHAT + 1)


# --- /export and several rules in one /alert ----------------------------------------------------------

RULES = (
    "rut above 3000",
    "spx below 4,500 once",
    "ratio below 0.40 band 0.5%",
    "lead 5% 3m for 30d",
    "rut move 2%",
    "rut cross 2000 close",
    "pegap below 30%",
)


async def test_export_deleted_and_pasted_back_sets_the_same_rules(direct_bot: DirectBot) -> None:
    bot, services = direct_bot, direct_bot.services
    made = await reply(bot, "/alert " + "\n".join(RULES))
    assert f"{len(RULES)} of {len(RULES)} alerts set" in made
    await reply(bot, "/pause 2")
    before = rules_of(services)

    exported = await reply(bot, "/export")
    (block,) = re.findall(r"<pre>(.*)</pre>", exported, re.DOTALL)
    pasted = html.unescape(block)
    assert len(pasted.splitlines()) == len(RULES) and all(
        line.startswith("/alert ") for line in pasted.splitlines()
    )
    for number in sorted({row[0] for row in before}):
        assert "Deleted" in await reply(bot, f"/delete {number}")
    assert rules_of(services) == []

    again = await reply(bot, pasted)
    assert f"{len(RULES)} of {len(RULES)} alerts set" in again
    after = rules_of(services)
    # The same rules under new numbers; the one paused comes back active, as /export says.
    same = [row[1:8] + row[9:] for row in after]
    assert same == [row[1:8] + row[9:] for row in before]
    assert [row[0] for row in after] == [row[0] + len(RULES) for row in before]
    assert [row[8] for row in after] == [0] * len(after) and 1 in [row[8] for row in before]


async def test_each_pasted_line_is_reported_and_a_bad_one_changes_nothing(direct_bot: DirectBot) -> None:
    bot, services = direct_bot, direct_bot.services
    answer = await reply(bot, "/alert rut above 3000\n\nrut abuve 5\n/alert rut above 3000\nspx above 5000")
    lines = answer.splitlines()
    assert lines[0] == "<b>2 of 4 alerts set</b>, one per line:"
    assert lines[1].startswith("✅ Line 1: <b>#1</b> RUT above 3,000")
    assert lines[2].startswith("❌ Line 2, “rut abuve 5”:")
    assert lines[3].startswith("➖ Line 3: You already have <b>#1</b>")
    assert lines[4].startswith("✅ Line 4: <b>#2</b> SPX above 5,000")
    assert [row[1] for row in rules_of(services)] == [
        "RUT above 3,000 · live · band 1%",
        "SPX above 5,000 · live · band 1%",
    ]


async def test_a_paste_respects_the_quota_of_fifty_alerts(direct_bot: DirectBot) -> None:
    bot, services = direct_bot, direct_bot.services
    first = "\n".join(f"/alert rut above {3000 + i}" for i in range(49))
    assert "49 of 49 alerts set" in await reply(bot, first)
    answer = await reply(bot, "/alert rut above 4000\nrut above 4001\nrut above 4002")
    assert "1 of 3 alerts set" in answer
    assert answer.count("the most alerts a chat can keep") == 2
    assert len(rules_of(services)) == 50


# --- /pause 3d ----------------------------------------------------------------------------------------


async def test_a_snooze_resumes_by_itself_after_a_restart(
    direct_bot_factory: Callable[..., Awaitable[DirectBot]], clock: FakeClock
) -> None:
    """/pause 3d pauses the alerts not paused already; a day later nothing has changed; the bot restarts
    (its jobs are gone, the snooze is in SQLite); once the three days are over the next run of the job
    resumes the snoozed alerts, not the one paused on its own, and the chat is told."""
    bot = await direct_bot_factory()
    await reply(bot, "/alert rut above 3000\nspx above 5000\nrut below 1500")
    await reply(bot, "/pause 2")
    snoozed_at = clock()

    answer = await reply(bot, "/pause 3d")

    until = (snoozed_at + timedelta(days=3)).astimezone(ZoneInfo("America/New_York"))
    assert f"until {until.day} {until:%b %Y %H:%M} EST" in answer and "(2 alerts)" in answer
    assert [row[8] for row in rules_of(bot.services)] == [1, 1, 1]

    clock.advance(days=1)
    await jobs.end_snoozes(CallbackContext(bot.application))  # type: ignore[arg-type]
    assert [row[8] for row in rules_of(bot.services)] == [1, 1, 1]

    # The restart: a new process's services and application on the same database file.
    config = bot.services.config
    restarted = build_services(config, source=CsvSource(SHARED_DATA, as_of=date(2024, 1, 18)), clock=clock)
    application = build_app(config, restarted, schedule=False)
    await application.initialize()
    await application.start()
    try:
        clock.advance(days=2, minutes=1)
        await jobs.end_snoozes(CallbackContext(application))  # type: ignore[arg-type]
        for task in [t for t in asyncio.all_tasks() if t.get_name() == "deliver"]:
            await task
        assert [row[8] for row in rules_of(restarted)] == [0, 1, 0]  # #2 was paused before: it stays
        assert restarted.alerts.chats.snooze(CHAT) is None
        assert "Snooze over: 2 alerts resumed." in (bot.emulator.sent_to(CHAT)[-1].plain_text or "")
    finally:
        await application.stop()
        await application.shutdown()
        restarted.close()


async def test_resume_ends_a_snooze_early_and_a_plain_pause_makes_it_for_good(
    direct_bot: DirectBot, clock: FakeClock
) -> None:
    bot, services = direct_bot, direct_bot.services
    await reply(bot, "/alert rut above 3000")
    assert "Snoozed your alerts (1 alert)" in await reply(bot, "/pause 12h")
    assert "The snooze is over" in await reply(bot, "/resume")
    assert services.alerts.chats.snooze(CHAT) is None and rules_of(services)[0][8] == 0

    await reply(bot, "/pause 2w")
    await reply(bot, "/pause")  # already paused: but no longer a snooze
    assert services.alerts.chats.snooze(CHAT) is None
    clock.advance(weeks=3)
    await jobs.end_snoozes(CallbackContext(bot.application))  # type: ignore[arg-type]
    assert rules_of(services)[0][8] == 1


async def test_an_alert_paused_on_its_own_during_a_snooze_stays_paused_after_it(
    direct_bot: DirectBot, clock: FakeClock
) -> None:
    bot, services = direct_bot, direct_bot.services
    await reply(bot, "/alert rut above 3000\nspx above 5000")
    await reply(bot, "/pause 3d")
    assert "Alert #2 stays paused when the snooze ends" in await reply(bot, "/pause 2")
    clock.advance(days=3)
    await jobs.end_snoozes(CallbackContext(bot.application))  # type: ignore[arg-type]
    assert [row[8] for row in rules_of(services)] == [0, 1]


async def test_a_snooze_too_long_or_of_nothing_is_refused(direct_bot: DirectBot) -> None:
    assert "at most 91 days" in await reply(direct_bot, "/pause 20w")
    assert "Nothing to snooze" in await reply(direct_bot, "/pause 3d")
    assert direct_bot.services.alerts.chats.snooze(CHAT) is None
    assert "or a time to snooze them all for" in await reply(direct_bot, "/pause soon")
