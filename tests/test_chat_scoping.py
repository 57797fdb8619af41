"""Every rule operation is scoped to the chat it came from, and in groups only administrators change rules.

Each test says what an attacker (or a careless member) tried. Updates go through the real Application
and its handlers (``DirectBot``); getChatMember is answered by the emulator from ``set_admins``.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.answers import GROUP_ADMINS_ONLY
from tests.conftest import DirectBot

ALICE = 1001  # a private chat with rules
MALLORY = 6666  # another private chat, guessing
GROUP = -100123456
OWNER, ADMIN, MEMBER = 11, 12, 13
GROUP_ANONYMOUS_BOT = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}


def rules_of(bot: DirectBot, chat_id: int) -> list[tuple[int, int]]:
    """(group id, paused) of the chat's stored rules."""
    return bot.services.alerts.db.execute(
        "SELECT group_id, paused FROM rules WHERE chat_id = ? ORDER BY rule_id", [chat_id]
    ).fetchall()


def sent_texts(calls: list[Any]) -> list[str]:
    return [c.params.get("text", "") for c in calls if c.method in ("sendMessage", "editMessageText")]


async def alice_has_a_rule(bot: DirectBot) -> int:
    (reply,) = await bot.replies(ALICE, "/alert rut cross 2000")
    assert "Alert <b>#1</b> set" in reply
    return 1


async def test_guessed_ids_never_reach_another_chats_rules(direct_bot: DirectBot) -> None:
    """Mallory types /alerts, /delete, /pause and /resume with Alice's alert number."""
    rule = await alice_has_a_rule(direct_bot)
    before = rules_of(direct_bot, ALICE)
    assert "You have no alerts" in (await direct_bot.replies(MALLORY, "/alerts"))[0]
    assert f"You have no alert #{rule}" in (await direct_bot.replies(MALLORY, f"/delete {rule}"))[0]
    assert "Nothing to pause" in (await direct_bot.replies(MALLORY, f"/pause {rule}"))[0]
    assert "Nothing to pause" in (await direct_bot.replies(MALLORY, "/pause"))[0]
    assert "Nothing to resume" in (await direct_bot.replies(MALLORY, f"/resume {rule}"))[0]
    for other in ("#1", "000001", "1 2", "1;DELETE FROM rules", "-1", "99999999999"):
        await direct_bot.replies(MALLORY, f"/delete {other}")
    assert rules_of(direct_bot, ALICE) == before == [(1, 0), (1, 0)]  # a cross is two rows, one id
    assert rules_of(direct_bot, MALLORY) == []
    assert "#1</b>" in (await direct_bot.replies(ALICE, "/alerts"))[0]


@pytest.mark.parametrize(
    "data",
    [
        "del:1",  # Alice's alert, from Mallory's chat
        "del:#1",
        "del:1 OR 1=1",
        "del:1;DROP TABLE rules",
        "del:-1",
        "del:99999999999999999999",
        "del:",
        "del:1:2",
        "delete:1 1 1",  # the button under Alice's list: her #1, its first row, page 1
        "delete:1 1 1 OR 1=1",
        "delete:1 -1 1",
        "delete:1 99999999999999999999 1",
        "delete:#1 1 1",
    ],
)
async def test_forged_delete_buttons_delete_nothing_of_another_chat(direct_bot: DirectBot, data: str) -> None:
    """Mallory's client sends delete-button callback data no button of hers carries (``del:`` is the
    form lists had before numbers were per chat)."""
    await alice_has_a_rule(direct_bot)
    (menu,) = [c for c in await direct_bot.message(MALLORY, "/standing") if c.method == "sendMessage"]
    _, calls = await direct_bot.press(MALLORY, menu.result["message_id"], data, forged=True)
    (shown,) = sent_texts(calls)
    assert "You have no alert #1" in shown or "no longer valid" in shown
    assert rules_of(direct_bot, ALICE) == [(1, 0), (1, 0)]


async def test_forged_guide_buttons_are_validated_like_typed_rules(direct_bot: DirectBot) -> None:
    """Callback data for the /alert guide carrying an absurd level or junk is judged as typed input."""
    (menu,) = [c for c in await direct_bot.message(MALLORY, "/alert") if c.method == "sendMessage"]
    for data in ("alert:rut above 1e309", "alert:rut above nan", "alert:rut above -5", "alert:<b>x</b>"):
        _, calls = await direct_bot.press(MALLORY, menu.result["message_id"], data, forged=True)
        assert sent_texts(calls), data  # an answer (an error or the guide again), never a crash
    assert rules_of(direct_bot, MALLORY) == []


# --- groups --------------------------------------------------------------------------------------------


def group_message(bot: DirectBot, text: str, user_id: int) -> Any:
    return bot.message(GROUP, text, chat_type="supergroup", user_id=user_id)


async def group_replies(bot: DirectBot, text: str, user_id: int) -> list[str]:
    return sent_texts(await group_message(bot, text, user_id))


@pytest.fixture
def group_bot(direct_bot: DirectBot) -> DirectBot:
    direct_bot.emulator.set_admins(GROUP, [ADMIN], owner_id=OWNER)
    return direct_bot


@pytest.mark.parametrize(
    "text",
    [
        "/alert rut above 3000",
        "/delete 1",
        "/pause",
        "/pause 1",
        "/resume",
        "/digest 22:00",
        "/tz Europe/Berlin",
        "/forget",
    ],
)
async def test_a_group_member_who_is_no_admin_cannot_change_the_groups_alerts(
    group_bot: DirectBot, text: str
) -> None:
    """A plain member tries each command that changes what the group keeps."""
    assert await group_replies(group_bot, "/alert rut cross 2000", ADMIN)  # the admin sets one first
    before = rules_of(group_bot, GROUP)
    chat_row = group_bot.services.alerts.chats.get(GROUP)
    assert await group_replies(group_bot, text, MEMBER) == [GROUP_ADMINS_ONLY]
    assert rules_of(group_bot, GROUP) == before
    assert group_bot.services.alerts.chats.get(GROUP) == chat_row


async def test_group_administrators_and_the_owner_can_change_them(group_bot: DirectBot) -> None:
    assert "Alert <b>#1</b> set" in (await group_replies(group_bot, "/alert rut above 3000", ADMIN))[0]
    assert "Alert <b>#2</b> set" in (await group_replies(group_bot, "/alert rut below 1000", OWNER))[0]
    assert "Paused alert #1" in (await group_replies(group_bot, "/pause 1", OWNER))[0]
    assert "Deleted #2: RUT below 1,000" in (await group_replies(group_bot, "/delete 2", ADMIN))[0]
    assert rules_of(group_bot, GROUP) == [(1, 1)]
    assert "#1</b>" in (await group_replies(group_bot, "/alerts", MEMBER))[0]  # everyone may look


async def test_an_anonymous_administrator_writing_as_the_group_is_an_administrator(
    group_bot: DirectBot,
) -> None:
    update = group_bot.emulator.user_message(GROUP, "/alert rut above 3000", chat_type="supergroup")
    message = update["message"]
    message["from"], message["sender_chat"] = GROUP_ANONYMOUS_BOT, message["chat"]
    assert "Alert <b>#1</b> set" in sent_texts(await group_bot.process(update, GROUP))[0]


async def test_when_telegram_cannot_say_who_is_admin_the_answer_is_no(group_bot: DirectBot) -> None:
    group_bot.emulator.fail("getChatMember", 500)
    assert await group_replies(group_bot, "/alert rut above 3000", ADMIN) == [GROUP_ADMINS_ONLY]
    assert rules_of(group_bot, GROUP) == []


async def test_a_member_pressing_a_delete_button_gets_a_private_refusal(group_bot: DirectBot) -> None:
    """A member presses the delete button under the admin's /alerts list."""
    await group_replies(group_bot, "/alert rut above 3000", ADMIN)
    (listing,) = [c for c in await group_message(group_bot, "/alerts", ADMIN) if c.method == "sendMessage"]
    message_id = listing.result["message_id"]
    (button,) = [b["callback_data"] for row in listing.result["reply_markup"]["inline_keyboard"] for b in row]
    query_id, calls = await group_bot.press(GROUP, message_id, button, user_id=MEMBER)
    assert sent_texts(calls) == []  # no message to the group, no edit
    assert group_bot.emulator.callback_answers[query_id]["text"] == GROUP_ADMINS_ONLY
    assert group_bot.emulator.callback_answers[query_id]["show_alert"] is True
    assert rules_of(group_bot, GROUP) == [(1, 0)]

    _, calls = await group_bot.press(GROUP, message_id, button, user_id=ADMIN)
    assert "Deleted #1: RUT above 3,000" in sent_texts(calls)[0]
    assert rules_of(group_bot, GROUP) == []


async def test_a_member_cannot_drive_the_alert_guide_in_a_group(group_bot: DirectBot) -> None:
    (guide,) = [c for c in await group_message(group_bot, "/alert", ADMIN) if c.method == "sendMessage"]
    query_id, calls = await group_bot.press(
        GROUP, guide.result["message_id"], "alert:rut above 3000", user_id=MEMBER, forged=True
    )
    assert (
        sent_texts(calls) == [] and group_bot.emulator.callback_answers[query_id]["text"] == GROUP_ADMINS_ONLY
    )
    assert rules_of(group_bot, GROUP) == []
