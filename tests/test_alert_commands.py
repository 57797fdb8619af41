"""The alert commands through the command core and, for buttons, through the real bot and the emulator."""

from __future__ import annotations

import pytest

from bot import core
from bot.format import plain
from bot.services import Services
from tests.conftest import RunningBot

CHAT = 77


async def ask(services: Services, text: str, chat_id: int = CHAT) -> str:
    name, args = core.parse_command_line(text)
    answer = await core.answer(core.Request(name, args, services, chat_id=chat_id, user_id=chat_id))
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
        csv_services.alerts.add_rule(CHAT, parse_rule(f"rut above {3000 + level}"), None, csv_services.now())
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
    assert "Alert #1 deleted" in await ask(csv_services, "/delete 1")
    assert stored_rules(csv_services) == 0
    assert "/delete ID" in await ask(csv_services, "/delete one")


async def test_digest_and_time_zone_settings(csv_services: Services) -> None:
    assert "Daily digest at 22:30 (America/New_York)" in await ask(csv_services, "/digest 22:30")
    assert "is not a time zone name" in await ask(csv_services, "/tz Mars/Olympus")
    assert csv_services.alerts.chat(CHAT).zone == "America/New_York"
    assert "Time zone set to Europe/Berlin" in await ask(csv_services, "/tz Europe/Berlin")
    assert csv_services.alerts.chat(CHAT).zone == "Europe/Berlin"
    assert "is not a time" in await ask(csv_services, "/digest 25:00")
    assert csv_services.alerts.chat(CHAT).digest_time == "22:30"
    assert "Daily digest off" in await ask(csv_services, "/digest off")
    assert csv_services.alerts.chat(CHAT).digest_time is None


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


async def test_delete_button_under_the_list_deletes_only_this_chats_rule(running_bot: RunningBot) -> None:
    emu = running_bot.emulator
    await running_bot.ask(CHAT, "/alert rut above 2500")
    await running_bot.ask(CHAT + 1, "/alert spx above 6000")
    await running_bot.ask(CHAT, "/alerts")
    listing = emu.sent_to(CHAT)[-1]
    # A tampering client asks to delete the other chat's rule (#2) from this chat's message.
    emu.press_button(CHAT, listing.message_id, "del:2", forged=True)
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert "You have no alert #2" in emu.chat_messages(CHAT)[-1].plain_text
    assert stored_rules(running_bot.services) == 2
    emu.press_button(CHAT, listing.message_id, "del:1")
    await emu.wait_for(chat_id=CHAT, method="editMessageText")
    assert "Alert #1 deleted" in emu.chat_messages(CHAT)[-1].plain_text
    assert stored_rules(running_bot.services) == 1
