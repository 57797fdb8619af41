"""The alert commands through the command core and, for buttons, through the real bot and the emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import answers, core
from bot.format import plain
from bot.services import Services
from tests.conftest import RunningBot

CHAT = 77


async def ask(services: Services, text: str, chat_id: int = CHAT) -> str:
    name, args = answers.parse_command_line(text)
    answer = await core.answer(answers.Request(name, args, services, chat_id=chat_id, user_id=chat_id))
    return plain(answer.text)


def stored_rules(services: Services) -> int:
    return int(services.alerts.db.execute("SELECT COUNT(*) FROM rules").fetchone()[0])


async def test_creating_an_alert_replies_with_state_and_a_one_year_preview(csv_services: Services) -> None:
    text = await ask(csv_services, "/alert rut above 1950 close")
    assert "Alert #1 set: RUT above 1,950 · close · band 1%" in text
    assert "Now: 1,923.65 (close, 18 Jan 2024)" in text
    assert "Over the last year it would have fired" in text
    assert stored_rules(csv_services) == 1


async def test_a_rule_that_already_holds_says_it_waits_for_the_next_crossing(csv_services: Services) -> None:
    text = await ask(csv_services, "/alert rut above 1500")
    assert "RUT is already above 1,500: you will be told on the next crossing" in text


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/alert nasdaq above 3000", "Unknown index or ETF"),
        ("/alert rut above lots", "lots"),
        ("/alert rut above nan", "not a finite number"),
        ("/alert rut above inf", "not a finite number"),
        ("/alert rut above -5", "RUT"),
        ("/alert rut above 99999999", "RUT"),
        ("/alert rut sideways 5", "is not a rule for rut"),
        ("/alert rut above 3000 loudly", "loudly"),
        ("/alert " + "rut above 3000 " * 20, "long"),
    ],
)
async def test_bad_rules_get_a_specific_reply_and_change_nothing(
    csv_services: Services, text: str, says: str
) -> None:
    reply = await ask(csv_services, text)
    assert says in reply
    assert "Examples:" in reply
    assert stored_rules(csv_services) == 0


async def test_the_fifty_first_alert_is_refused_and_changes_nothing(csv_services: Services) -> None:
    from alerts.rules import parse_rule

    for level in range(50):
        csv_services.alerts.rules.add(CHAT, parse_rule(f"rut above {3000 + level}"), None, csv_services.now())
    before = stored_rules(csv_services)
    reply = await ask(csv_services, "/alert rut above 4000")
    assert "most alerts a chat can keep" in reply
    assert stored_rules(csv_services) == before == 50


async def test_list_pause_resume_and_delete_are_scoped_to_the_chat(csv_services: Services) -> None:
    await ask(csv_services, "/alert rut cross 2000 close")
    assert "You have no alerts" in await ask(csv_services, "/alerts", chat_id=999)
    assert "You have no alert #1" in await ask(csv_services, "/delete 1", chat_id=999)
    assert "Nothing to pause" in await ask(csv_services, "/pause 1", chat_id=999)
    listing = await ask(csv_services, "/alerts")
    assert "#1 RUT cross 2,000 · close · band 1% — armed" in listing
    assert "Paused alert #1" in await ask(csv_services, "/pause 1")
    assert "— paused" in await ask(csv_services, "/alerts")
    assert "Resumed your alerts" in await ask(csv_services, "/resume")
    assert "Deleted #1: RUT cross 2,000 · close · band 1%" in await ask(csv_services, "/delete 1")
    assert stored_rules(csv_services) == 0
    assert "/delete ID" in await ask(csv_services, "/delete one")


async def test_digest_and_time_zone_settings(csv_services: Services) -> None:
    assert "Daily digest at 22:30 (America/New_York)" in await ask(csv_services, "/digest 22:30")
    assert "is not a time zone name" in await ask(csv_services, "/tz Mars/Olympus")
    assert csv_services.alerts.chats.get(CHAT).zone == "America/New_York"
    assert "Time zone set to Europe/Berlin" in await ask(csv_services, "/tz Europe/Berlin")
    assert csv_services.alerts.chats.get(CHAT).zone == "Europe/Berlin"
    assert "is not a time" in await ask(csv_services, "/digest 25:00")
    assert csv_services.alerts.chats.get(CHAT).digest_time == "22:30"
    assert "Daily digest off" in await ask(csv_services, "/digest off")
    assert csv_services.alerts.chats.get(CHAT).digest_time is None


async def test_guided_alert_flow_with_buttons_creates_the_rule(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    await running_bot.ask(CHAT, "/alert")
    message = emu.sent_to(CHAT)[-1]
    assert "what should I watch?" in message.plain_text
    emu.press_button(CHAT, message.message_id, "alert:rut")
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    emu.press_button(CHAT, message.message_id, "alert:rut above")
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    levels = [
        b["callback_data"] for row in emu.chat_messages(CHAT)[-1].reply_markup["inline_keyboard"] for b in row
    ]
    assert levels == ["alert:rut above 2000", "alert:rut above 2100"]  # round levels above 1,923.65
    emu.press_button(CHAT, message.message_id, levels[0])
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert "Alert #1 set: RUT above 2,000" in emu.chat_messages(CHAT)[-1].plain_text
    assert stored_rules(running_bot.services) == 1


async def test_the_button_flow_sets_a_gap_rule_on_price_to_earnings(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    await running_bot.ask(CHAT, "/alert")
    message = emu.sent_to(CHAT)[-1]
    assert "alert:pegap" in buttons_of(message) and "alert:gap" in buttons_of(message)
    emu.press_button(CHAT, message.message_id, "alert:pegap")
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert buttons_of(emu.chat_messages(CHAT)[-1]) == [
        "alert:pegap above",
        "alert:pegap below",
        "alert:pegap shift",
    ]
    emu.press_button(CHAT, message.message_id, "alert:pegap shift")
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    emu.press_button(CHAT, message.message_id, "alert:pegap shift 3")
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert "Alert #1 set: pegap shift 3" in emu.chat_messages(CHAT)[-1].plain_text
    assert stored_rules(running_bot.services) == 1


def buttons_of(message: object) -> list[str]:
    markup = getattr(message, "reply_markup", None) or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


async def test_delete_button_under_the_list_deletes_only_this_chats_rule(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    await running_bot.ask(CHAT, "/alert rut above 2500")
    await running_bot.ask(CHAT + 1, "/alert spx above 6000")
    await running_bot.ask(CHAT, "/alerts")
    listing = emu.sent_to(CHAT)[-1]
    (mine,) = buttons_of(listing)
    await running_bot.ask(CHAT + 1, "/alerts")
    (theirs,) = buttons_of(emu.sent_to(CHAT + 1)[-1])
    # A tampering client presses the other chat's button (its #1, its row key) on this chat's message.
    emu.press_button(CHAT, listing.message_id, theirs, forged=True)
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert "That button is for an alert that no longer exists: nothing was deleted" in (
        emu.chat_messages(CHAT)[-1].plain_text
    )
    assert stored_rules(running_bot.services) == 2
    emu.press_button(CHAT, listing.message_id, mine)
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert "Deleted #1: RUT above 2,500 · live · band 1%" in emu.chat_messages(CHAT)[-1].plain_text
    assert stored_rules(running_bot.services) == 1


def last_close(shared_data: Path, name: str) -> tuple[str, float, float]:
    """(date, close, highest close up to then) of the last row on or before the 2024-01-18 as-of day."""
    rows = [
        line.split(",")
        for line in (shared_data / f"{name}_daily.csv").read_text().splitlines()[1:]
        if line.split(",")[0] <= "2024-01-18" and line.split(",")[4]
    ]
    closes = [float(r[4]) for r in rows]
    return rows[-1][0], closes[-1], max(closes)


async def test_a_drawdown_that_already_holds_says_how_far_below_the_high_it_is(
    csv_services: Services, shared_data: Path
) -> None:
    """Was "RUT is already there 10%"; the figure is the distance of the close from the highest close."""
    _, close, high = last_close(shared_data, "RUT")
    text = await ask(csv_services, "/alert rut drawdown 10%")
    drawdown = (1 - close / high) * 100
    assert (
        f"RUT is already {drawdown:.1f}% below its all-time closing high of {high:,.2f}, more than the 10%"
        in (text)
    )
    assert f"{drawdown:.1f}" == "21.3" and f"{high:,.2f}" == "2,442.74"  # 18 Jan 2024 against 8 Nov 2021
    assert "already there" not in text


async def test_a_move_and_a_lead_that_already_hold_are_told_in_a_sentence(csv_services: Services) -> None:
    move = await ask(csv_services, "/alert rut move 0.5%")
    assert (
        "RUT has already moved +0.55% today, at least the 0.5% it watches for" in move
    )  # 1,923.65 / 1,913.17
    ratio = await ask(csv_services, "/alert ratio above 0.3")
    assert "The RUT/SPX ratio (0.4024) is already above 0.3: you will be told" in ratio


async def test_a_rule_on_data_that_ended_says_since_when_and_is_listed_so(
    csv_services: Services, shared_data: Path
) -> None:
    """VTWO's history ends on 14 Apr 2023, months before the 18 Jan 2024 as-of day."""
    ended, _, _ = last_close(shared_data, "VTWO")
    assert ended == "2023-04-14"
    text = await ask(csv_services, "/alert vtwo below 70")
    assert "Alert #1 set: VTWO below 70" in text
    assert "There is no VTWO close since 14 Apr 2023. The alert cannot be judged until data arrives" in text
    assert "Over the last year, up to 14 Apr 2023, it would have fired" in text
    assert stored_rules(csv_services) == 1  # kept: judged when data comes
    listing = await ask(csv_services, "/alerts")
    assert "#1 VTWO below 70 · live · band 1% — no data since 14 Apr 2023" in listing
    assert "waiting to re-arm" not in listing


async def test_a_gap_rule_without_any_price_to_book_says_there_is_no_data_yet(csv_services: Services) -> None:
    """funds.csv has no P/B: the gap is unknown, so nothing can be said of the last year either."""
    assert csv_services.market.snapshot.funds["price_to_book"].isna().all()
    text = await ask(csv_services, "/alert gap above 45%")
    assert "Alert #1 set: gap above 45%" in text
    assert "There is no valuation gap on P/B yet: no trusted P/B reading of IWM/IVV or VTWO/VOO" in text
    assert "No trusted P/B reading is recorded yet. With CSV data the readings are the as_of rows" in text
    assert "Over the last year: no recorded history yet" in text and "would not have fired" not in text
    await ask(csv_services, "/alert rut above 2500")
    listing = await ask(csv_services, "/alerts")
    assert "#1 gap above 45% · close · band 1% — no data yet" in listing
    assert "#2 RUT above 2,500 · live · band 1% — armed · last 1,923.65" in listing
    await ask(csv_services, "/pause 1")
    assert "#1 gap above 45% · close · band 1% — paused · no data yet" in await ask(csv_services, "/alerts")
