"""/forget (bot/commands/privacy.py): everything stored about a chat goes, after a checked confirmation."""

from __future__ import annotations

from typing import Any

from bot.answers import GROUP_ADMINS_ONLY
from tests.conftest import DirectBot

ALICE, BOB = 1001, 1002
GROUP = -100555
OWNER, ADMIN, MEMBER = 21, 22, 23


def stored_about(bot: DirectBot, chat_id: int) -> dict[str, int]:
    db = bot.services.alerts.db
    return {
        "chats": db.execute("SELECT COUNT(*) FROM chats WHERE chat_id = ?", [chat_id]).fetchone()[0],
        "rules": db.execute("SELECT COUNT(*) FROM rules WHERE chat_id = ?", [chat_id]).fetchone()[0],
        "outbox": db.execute("SELECT COUNT(*) FROM outbox WHERE chat_id = ?", [chat_id]).fetchone()[0],
        "in memory": int((bot.services.alerts.rules.active["chat_id"] == chat_id).sum()),
    }


async def fill(bot: DirectBot, chat_id: int, **kwargs: Any) -> None:
    for text in ("/alert rut cross 2000", "/alert gap shift 3", "/digest 22:30", "/tz Europe/Berlin"):
        await bot.message(chat_id, text, **kwargs)
    bot.services.alerts.outbox.queue(chat_id, "an alert", "alert", bot.services.now())


async def ask_to_forget(bot: DirectBot, chat_id: int, **kwargs: Any) -> tuple[int, list[str]]:
    (call,) = [c for c in await bot.message(chat_id, "/forget", **kwargs) if c.method == "sendMessage"]
    buttons = [b["callback_data"] for row in call.params["reply_markup"]["inline_keyboard"] for b in row]
    return call.result["message_id"], buttons


def shown(calls: list[Any]) -> str:
    (edit,) = [c for c in calls if c.method == "editMessageText"]
    return str(edit.params["text"])


async def test_forget_deletes_every_row_about_the_chat_after_confirmation(direct_bot: DirectBot) -> None:
    await fill(direct_bot, ALICE)
    await fill(direct_bot, BOB)
    bobs = stored_about(direct_bot, BOB)
    assert stored_about(direct_bot, ALICE) == {"chats": 1, "rules": 3, "outbox": 1, "in memory": 3}

    message_id, buttons = await ask_to_forget(direct_bot, ALICE)
    assert buttons == [f"forget:yes:{ALICE}", "forget:no"]
    _, calls = await direct_bot.press(ALICE, message_id, "forget:no")
    assert shown(calls) == "Nothing was deleted."
    assert stored_about(direct_bot, ALICE)["rules"] == 3

    message_id, _ = await ask_to_forget(direct_bot, ALICE)
    _, calls = await direct_bot.press(ALICE, message_id, f"forget:yes:{ALICE}")
    assert "no longer keeps anything" in shown(calls)
    assert stored_about(direct_bot, ALICE) == {"chats": 0, "rules": 0, "outbox": 0, "in memory": 0}
    assert stored_about(direct_bot, BOB) == bobs
    assert "You have no alerts" in (await direct_bot.replies(ALICE, "/alerts"))[0]


async def test_a_forged_or_malformed_confirmation_deletes_nothing(direct_bot: DirectBot) -> None:
    """A client sends confirmations naming someone else, or junk, without a /forget."""
    await fill(direct_bot, ALICE)
    (menu,) = [c for c in await direct_bot.message(ALICE, "/standing") if c.method == "sendMessage"]
    for data, says in [
        (f"forget:yes:{BOB}", "Only the person who sent /forget can confirm it"),
        ("forget:yes:", "no longer valid"),
        ("forget:yes:1 OR 1=1", "no longer valid"),
        ("forget:everything", "no longer valid"),
    ]:
        _, calls = await direct_bot.press(ALICE, menu.result["message_id"], data, forged=True)
        assert says in shown(calls), data
    assert stored_about(direct_bot, ALICE)["rules"] == 3


async def test_in_a_group_only_administrators_forget_and_confirm(direct_bot: DirectBot) -> None:
    direct_bot.emulator.set_admins(GROUP, [ADMIN], owner_id=OWNER)
    await fill(direct_bot, GROUP, chat_type="supergroup", user_id=ADMIN)
    before = stored_about(direct_bot, GROUP)
    assert before["rules"] == 3

    assert await direct_bot.replies(GROUP, "/forget", chat_type="supergroup", user_id=MEMBER) == [
        GROUP_ADMINS_ONLY
    ]
    message_id, _ = await ask_to_forget(direct_bot, GROUP, chat_type="supergroup", user_id=ADMIN)
    query_id, calls = await direct_bot.press(GROUP, message_id, f"forget:yes:{ADMIN}", user_id=MEMBER)
    assert not [c for c in calls if c.method.startswith(("send", "edit"))]
    assert direct_bot.emulator.callback_answers[query_id]["text"] == GROUP_ADMINS_ONLY
    assert stored_about(direct_bot, GROUP) == before

    _, calls = await direct_bot.press(
        GROUP, message_id, f"forget:yes:{ADMIN}", user_id=OWNER
    )  # another admin
    assert "no longer keeps anything about this group" in shown(calls)
    assert stored_about(direct_bot, GROUP) == {"chats": 0, "rules": 0, "outbox": 0, "in memory": 0}


async def test_forget_counts_alerts_as_alerts_lists_them_and_names_what_else_went(
    direct_bot: DirectBot,
) -> None:
    """A "cross" is one alert in /alerts though it is stored as two rules: /forget counts two alerts, not
    three rule rows, and says in words that the settings and the queued message went too."""
    await fill(direct_bot, ALICE)
    listed = (await direct_bot.replies(ALICE, "/alerts"))[0]
    assert "(2)" in listed and stored_about(direct_bot, ALICE)["rules"] == 3
    (prompt,) = [c for c in await direct_bot.message(ALICE, "/forget") if c.method == "sendMessage"]
    assert (
        "everything capgap keeps about this chat: its 2 alerts, its time zone and digest setting"
        in (prompt.params["text"])
    )
    _, calls = await direct_bot.press(ALICE, prompt.result["message_id"], f"forget:yes:{ALICE}")
    assert shown(calls) == (
        "Done: capgap no longer keeps anything about this chat. Deleted its 2 alerts, its time zone and "
        "digest setting and 1 message it had queued or sent here. /start to begin again."
    )
    assert "row" not in shown(calls)
